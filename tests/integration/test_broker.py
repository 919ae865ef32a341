"""The local broker wrapper: idempotent start/stop, stale pid files, busy ports.

These brokers run on spare ports with their own state folders, next to the main test
broker, which they never touch.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.cli import main
from streams._probe import accepts_requests
from streams.broker import BrokerOutcome, BrokerReport, LocalBroker
from streams.errors import BrokerError

pytestmark = pytest.mark.kafka


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _dead_pid() -> int:
    """The pid of a process that has already exited (and been reaped)."""
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


@contextlib.contextmanager
def _spare_broker(project_root: Path, **options: str) -> Iterator[LocalBroker]:
    """A broker on a free port; afterwards stopped (if it ran) and its folder removed."""
    broker = LocalBroker(project_root, port=_free_port(), heap="512m", **options)
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(broker.state_dir, ignore_errors=True)


@pytest.fixture
def idle(project_root: Path) -> Iterator[LocalBroker]:
    """A broker on a free port that nobody started."""
    with _spare_broker(project_root) as broker:
        yield broker


@pytest.fixture(scope="module")
def spare(project_root: Path) -> Iterator[tuple[LocalBroker, BrokerReport]]:
    """A second broker on a free port, started over a stale pid file."""
    with _spare_broker(project_root) as broker:
        broker.state_dir.mkdir(parents=True, exist_ok=True)
        broker.pid_path.write_text(f"{_dead_pid()}\n")
        yield broker, broker.start(timeout_s=120)


def test_start_replaces_a_stale_pid_file_and_says_so(
    spare: tuple[LocalBroker, BrokerReport],
) -> None:
    broker, report = spare
    assert report.outcome is BrokerOutcome.STARTED
    assert report.removed_stale_pid_file
    assert broker.pid_path.read_text().strip() == str(report.pid)
    assert report.describe().startswith(f"removed stale pid file {broker.pid_path}")


def test_starting_a_running_broker_is_a_no_op_that_says_so(
    spare: tuple[LocalBroker, BrokerReport],
) -> None:
    broker, first = spare
    again = broker.start()
    assert again.outcome is BrokerOutcome.ALREADY_RUNNING
    assert again.pid == first.pid
    assert again.describe() == (
        f"Kafka already running on 127.0.0.1:{broker.port} (pid {first.pid}); nothing to do"
    )


def test_status_reports_the_running_broker_answering_requests(
    spare: tuple[LocalBroker, BrokerReport],
) -> None:
    broker, first = spare
    status = broker.status()
    assert status.outcome is BrokerOutcome.RUNNING
    assert status.pid == first.pid
    assert status.accepting_requests


def test_a_checkout_reached_through_a_symlink_knows_the_broker_it_runs(
    spare: tuple[LocalBroker, BrokerReport], tmp_path: Path
) -> None:
    """The same folder under another name (a symlinked home, a worktree's link to the
    jars) must not take the running broker for a stranger and drop its pid file."""
    broker, first = spare
    alias = tmp_path / "checkout"
    alias.symlink_to(broker.root, target_is_directory=True)
    status = LocalBroker(alias, port=broker.port).status()
    assert status.outcome is BrokerOutcome.RUNNING
    assert status.pid == first.pid
    assert broker.pid_path.read_text().strip() == str(first.pid)


def test_each_broker_keeps_state_and_log_in_its_own_folder(
    spare: tuple[LocalBroker, BrokerReport], project_root: Path
) -> None:
    broker, _ = spare
    cache = (project_root / ".cache" / "kafka").resolve()  # a linked .cache: its target
    assert broker.state_dir == cache / f"broker-{broker.port}"
    assert (broker.data_dir / "meta.properties").is_file()
    assert "Kafka Server started" in broker.log_path.read_text()


def test_stop_ends_the_process_and_frees_the_port(idle: LocalBroker) -> None:
    started = idle.start(timeout_s=120)

    stopped = idle.stop()

    assert stopped.outcome is BrokerOutcome.STOPPED
    assert stopped.pid == started.pid
    assert not idle.pid_path.exists()
    assert not Path(f"/proc/{started.pid}").exists()
    assert not accepts_requests("127.0.0.1", idle.port)


def test_stopping_a_broker_that_is_not_running_says_there_is_nothing_to_stop(
    idle: LocalBroker,
) -> None:
    report = idle.stop()
    assert report.outcome is BrokerOutcome.NOT_RUNNING
    assert report.describe() == f"Kafka is not running on 127.0.0.1:{idle.port}; nothing to stop"


def test_a_pid_file_naming_another_live_process_is_stale(idle: LocalBroker) -> None:
    idle.state_dir.mkdir(parents=True, exist_ok=True)
    idle.pid_path.write_text(f"{os.getpid()}\n")
    report = idle.status()
    assert report.outcome is BrokerOutcome.NOT_RUNNING
    assert report.removed_stale_pid_file
    assert not idle.pid_path.exists()


def test_starting_on_a_port_another_process_holds_fails_with_one_clear_line(
    project_root: Path,
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(BrokerError) as caught:
            LocalBroker(project_root, port=port).start()
    assert str(caught.value) == (
        f"port {port} on 127.0.0.1 is already in use by another process: "
        "stop it or start Kafka on another port (--port / KAFKA_PORT=...)"
    )


def test_missing_jars_point_to_the_make_target(project_root: Path) -> None:
    with (
        _spare_broker(project_root, kafka_version="0.0.0") as broker,
        pytest.raises(BrokerError, match=r"jars are missing .* `make kafka-jars`"),
    ):
        broker.start()


def test_kafka_status_command_exits_1_when_the_broker_is_down(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = _free_port()
    assert main(["kafka", "status", "--port", str(port)]) == 1
    assert capsys.readouterr().out == f"Kafka is not running on 127.0.0.1:{port}\n"


def test_kafka_start_command_reports_a_busy_port_as_one_error_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        code = main(["kafka", "start", "--port", str(port)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith(f"liqmon: error: port {port} on 127.0.0.1 is already in use")


def test_a_heap_size_java_would_reject_is_refused_up_front(project_root: Path) -> None:
    with pytest.raises(BrokerError, match="heap 'lots' is not a JVM memory size"):
        LocalBroker(project_root, port=_free_port(), heap="lots")


def test_a_broker_that_dies_during_start_up_reports_its_last_error(
    idle: LocalBroker, tmp_path: Path
) -> None:
    fake_java = tmp_path / "java"
    fake_java.write_text(
        "#!/bin/sh\n"
        'case "$*" in *StorageTool*) exit 0 ;; esac\n'
        "echo '[t] INFO starting'\n"
        "echo '[t] ERROR Exiting Kafka due to fatal exception (kafka.Kafka$)'\n"
        "exit 1\n"
    )
    fake_java.chmod(0o755)
    broken = LocalBroker(idle.root, port=idle.port, java=str(fake_java))
    with pytest.raises(BrokerError) as caught:
        broken.start()
    assert str(caught.value) == (
        "Kafka exited during start-up: "
        "[t] ERROR Exiting Kafka due to fatal exception (kafka.Kafka$) "
        f"(log: {broken.log_path})"
    )
    assert not broken.pid_path.exists()
