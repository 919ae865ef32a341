"""A local single-node Apache Kafka broker for development and tests.

`LocalBroker` formats KRaft storage and runs one combined broker + controller on
127.0.0.1 from the jars that ``deploy/kafka/pom.xml`` fetched into
``.cache/kafka/<version>/libs``. Everything one broker owns (data, generated config, pid
file, log) lives in ``.cache/kafka/broker-<port>/``, so a second broker on another port
never touches the first. The broker is a detached process: it outlives the command that
started it and is stopped by the pid it recorded.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import fcntl
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import msgspec

from streams._probe import accepts_requests
from streams.errors import BrokerError

__all__ = ["DEFAULT_PORT", "KAFKA_VERSION", "BrokerOutcome", "BrokerReport", "LocalBroker"]

#: The Kafka release liqmon runs (and tests against); deploy/kafka/README.md says why.
KAFKA_VERSION = "4.4.0"
DEFAULT_PORT = 9092
HOST = "127.0.0.1"
_NODE_ID = 1
_HEAP = re.compile(r"^[1-9][0-9]*[kKmMgG]?$")


class BrokerOutcome(enum.Enum):
    """What a start/stop/status call found or did."""

    STARTED = "started"
    ALREADY_RUNNING = "already running"
    STOPPED = "stopped"
    NOT_RUNNING = "not running"
    RUNNING = "running"


class BrokerReport(msgspec.Struct, frozen=True, kw_only=True):
    """The result of a `LocalBroker` call, with what a person needs to act on it."""

    outcome: BrokerOutcome
    #: The call that produced this report.
    action: Literal["start", "stop", "status"]
    port: int
    log_path: str
    pid: int | None = None
    #: True when this call found a pid file naming no running broker and removed it.
    removed_stale_pid_file: bool = False
    accepting_requests: bool = False
    ready_after_s: float | None = None

    def describe(self) -> str:
        """What happened, for the terminal (a second line notes a removed stale pid file)."""
        line = self._outcome_line()
        if self.removed_stale_pid_file:
            pid_file = Path(self.log_path).with_name("broker.pid")
            note = f"removed stale pid file {pid_file} (no broker of ours runs under that pid)"
            return f"{note}\n{line}"
        return line

    def _outcome_line(self) -> str:
        where = f"{HOST}:{self.port}"
        if self.outcome is BrokerOutcome.STARTED:
            return (
                f"Kafka {KAFKA_VERSION} started on {where} (pid {self.pid}, ready in "
                f"{self.ready_after_s:.1f}s); log: {self.log_path}"
            )
        if self.outcome is BrokerOutcome.ALREADY_RUNNING:
            return f"Kafka already running on {where} (pid {self.pid}); nothing to do"
        if self.outcome is BrokerOutcome.STOPPED:
            return f"Kafka on {where} stopped (pid {self.pid})"
        if self.outcome is BrokerOutcome.RUNNING:
            state = "accepting requests" if self.accepting_requests else "NOT accepting requests"
            return f"Kafka running on {where} (pid {self.pid}, {state}); log: {self.log_path}"
        nothing = "; nothing to stop" if self.action == "stop" else ""
        return f"Kafka is not running on {where}{nothing}"


def find_project_root(start: Path | None = None) -> Path:
    """The liqmon checkout: the nearest folder holding deploy/kafka/pom.xml.

    Searched from `start` (default: the working directory) upwards, then next to this
    package (an editable install).
    """
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents, Path(__file__).resolve().parents[1]):
        if (candidate / "deploy" / "kafka" / "pom.xml").is_file():
            return candidate
    raise BrokerError(
        f"cannot find deploy/kafka/pom.xml above {here}: run this from the liqmon checkout"
    )


class LocalBroker:
    """Start, stop and inspect the local Kafka broker listening on 127.0.0.1:`port`."""

    def __init__(
        self,
        root: Path,
        *,
        port: int = DEFAULT_PORT,
        kafka_version: str = KAFKA_VERSION,
        heap: str = "768m",
        java: str = "java",
    ) -> None:
        if not _HEAP.match(heap):
            raise BrokerError(f"heap {heap!r} is not a JVM memory size such as 512m or 1g")
        self.root = root
        self.port = port
        self.kafka_version = kafka_version
        self.heap = heap
        self.java = java
        # Resolved: the pid check compares the broker's command line with this config path,
        # so the same folder under another name (a symlink) must give the same path.
        cache = (root / ".cache" / "kafka").resolve()
        self.libs_dir = cache / kafka_version / "libs"
        self.state_dir = cache / f"broker-{port}"
        self.data_dir = self.state_dir / "data"
        self.config_path = self.state_dir / "server.properties"
        self.pid_path = self.state_dir / "broker.pid"
        self.log_path = self.state_dir / "kafka.log"

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    def status(self) -> BrokerReport:
        """Whether this broker runs, cleaning up a stale pid file on the way."""
        if not self.state_dir.is_dir():
            return self._report("status", BrokerOutcome.NOT_RUNNING)
        with self._locked():
            pid, stale = self._running_pid()
            if pid is None:
                return self._report("status", BrokerOutcome.NOT_RUNNING, stale=stale)
            return self._report(
                "status",
                BrokerOutcome.RUNNING,
                pid=pid,
                accepting_requests=accepts_requests(HOST, self.port),
            )

    def start(self, *, timeout_s: float = 60.0) -> BrokerReport:
        """Start the broker and return once it answers Kafka requests; no-op if it runs."""
        if not self.state_dir.is_dir():
            self._check_prerequisites()  # fail before leaving a state folder behind
        with self._locked():
            pid, stale = self._running_pid()
            if pid is not None:
                return self._report("start", BrokerOutcome.ALREADY_RUNNING, pid=pid)
            self._check_prerequisites()
            controller_port = _free_port()
            self._write_config(controller_port)
            self._format_storage()
            began = time.monotonic()
            pid = self._launch()
            self.pid_path.write_text(f"{pid}\n")
            self._await_ready(pid, deadline=began + timeout_s)
            return self._report(
                "start",
                BrokerOutcome.STARTED,
                pid=pid,
                stale=stale,
                accepting_requests=True,
                ready_after_s=time.monotonic() - began,
            )

    def stop(self, *, timeout_s: float = 30.0) -> BrokerReport:
        """Stop the broker by its recorded pid (SIGTERM, then SIGKILL after `timeout_s`)."""
        if not self.state_dir.is_dir():
            return self._report("stop", BrokerOutcome.NOT_RUNNING)
        with self._locked():
            pid, stale = self._running_pid()
            if pid is None:
                return self._report("stop", BrokerOutcome.NOT_RUNNING, stale=stale)
            os.kill(pid, signal.SIGTERM)
            if not _wait_for_exit(pid, timeout_s):
                os.kill(pid, signal.SIGKILL)
                _wait_for_exit(pid, 10.0)
            self.pid_path.unlink(missing_ok=True)
            return self._report("stop", BrokerOutcome.STOPPED, pid=pid)

    # -- internals ---------------------------------------------------------------------------

    def _report(
        self,
        action: Literal["start", "stop", "status"],
        outcome: BrokerOutcome,
        *,
        pid: int | None = None,
        stale: bool = False,
        accepting_requests: bool = False,
        ready_after_s: float | None = None,
    ) -> BrokerReport:
        return BrokerReport(
            outcome=outcome,
            action=action,
            port=self.port,
            log_path=str(self.log_path),
            pid=pid,
            removed_stale_pid_file=stale,
            accepting_requests=accepting_requests,
            ready_after_s=ready_after_s,
        )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise start/stop/status of one broker across processes."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _running_pid(self) -> tuple[int | None, bool]:
        """(pid of our running broker or None, whether a stale pid file was removed)."""
        try:
            text = self.pid_path.read_text().strip()
        except FileNotFoundError:
            return None, False
        pid = int(text) if text.isdigit() else None
        if pid is not None and _is_alive(pid) and self._is_our_broker(pid):
            return pid, False
        self.pid_path.unlink(missing_ok=True)
        return None, True

    def _is_our_broker(self, pid: int) -> bool:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return b"kafka.Kafka" in argv and str(self.config_path).encode() in argv

    def _check_prerequisites(self) -> None:
        if shutil.which(self.java) is None:
            raise BrokerError(
                f"`{self.java}` not found: install Java 17 or newer (`make` installs it)"
            )
        if not any(self.libs_dir.glob("kafka-server-*.jar")):
            raise BrokerError(
                f"Kafka {self.kafka_version} jars are missing from {self.libs_dir}: "
                "fetch them with `make kafka-jars`"
            )
        if _port_in_use(HOST, self.port):
            raise BrokerError(
                f"port {self.port} on {HOST} is already in use by another process: "
                "stop it or start Kafka on another port (--port / KAFKA_PORT=...)"
            )

    def _write_config(self, controller_port: int) -> None:
        template = (self.root / "deploy" / "kafka" / "server.properties").read_text()
        instance = "\n".join(
            [
                "",
                "# Written by `liqmon kafka start` for this instance.",
                f"node.id={_NODE_ID}",
                f"listeners=PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{controller_port}",
                f"advertised.listeners=PLAINTEXT://{HOST}:{self.port}",
                f"controller.quorum.voters={_NODE_ID}@{HOST}:{controller_port}",
                f"log.dirs={self.data_dir}",
                "",
            ]
        )
        self.config_path.write_text(template + instance)

    def _java_command(self, main_class: str, *args: str) -> list[str]:
        log4j = self.root / "deploy" / "kafka" / "log4j2.xml"
        return [
            self.java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+ExitOnOutOfMemoryError",
            f"-Xlog:gc:file={self.state_dir / 'gc.log'}:time,uptime,level,tags"
            ":filecount=5,filesize=10M",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{self.libs_dir}/*",
            main_class,
            *args,
        ]

    def _format_storage(self) -> None:
        """Format the KRaft log once; a formatted data dir keeps its cluster id."""
        if (self.data_dir / "meta.properties").is_file():
            return
        command = self._java_command(
            "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(self.config_path)
        )
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            lines = [line.strip() for line in (done.stderr + done.stdout).splitlines()]
            said = " / ".join(line for line in lines if line)[-400:] or "no output"
            raise BrokerError(f"formatting Kafka storage in {self.data_dir} failed: {said}")

    def _launch(self) -> int:
        """Spawn the broker detached (own session, output to the log); return its pid.

        posix_spawn rather than subprocess.Popen: the broker must outlive this process, and a
        Popen object would warn about (and try to reap) a child it was never meant to wait for.
        """
        if self.log_path.exists():
            self.log_path.replace(self.log_path.with_suffix(".log.1"))
        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            return os.posix_spawnp(
                self.java,
                self._java_command("kafka.Kafka", str(self.config_path)),
                dict(os.environ),
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, log, 1),
                    (os.POSIX_SPAWN_DUP2, log, 2),
                ],
                setsid=True,
            )
        finally:
            os.close(log)

    def _await_ready(self, pid: int, *, deadline: float) -> None:
        """Wait until the broker answers requests; BrokerError if it dies or the deadline passes."""
        while not accepts_requests(HOST, self.port):
            if _wait_for_exit(pid, 0.25):
                self.pid_path.unlink(missing_ok=True)
                raise BrokerError(
                    f"Kafka exited during start-up: {_last_error(self.log_path)} "
                    f"(log: {self.log_path})"
                )
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                _wait_for_exit(pid, 10.0)
                self.pid_path.unlink(missing_ok=True)
                raise BrokerError(
                    f"Kafka did not accept requests on {HOST}:{self.port} in time; "
                    f"see {self.log_path}"
                )


def _cluster_id() -> str:
    """A random Kafka cluster id: 16 bytes, URL-safe base64 without padding (as Kafka's Uuid)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _is_alive(pid: int) -> bool:
    """True if `pid` runs; a zombie counts as gone (and is reaped if it is our child)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def _wait_for_exit(pid: int, timeout_s: float) -> bool:
    """Block until `pid` exits or `timeout_s` passes; True if it exited."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], timeout_s)
    finally:
        os.close(fd)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return bool(readable) or not _is_alive(pid)


def _last_error(log_path: Path) -> str:
    """The most telling line of a failed broker's log: its last ERROR, else its last line."""
    try:
        lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines()]
    except OSError:
        return "no log written"
    lines = [line for line in lines if line]
    errors = [line for line in lines if " ERROR " in line or "Exception" in line]
    return (errors or lines or ["no log written"])[-1]
