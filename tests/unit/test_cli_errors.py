"""Errors a user can hit at the command line are one line, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

INSTRUMENTS = str(Path(__file__).resolve().parents[2] / "deploy" / "instruments.example.json")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "command",
    [["tail"], ["run", "--instruments", INSTRUMENTS]],
    ids=["tail", "run"],
)
def test_an_unreachable_broker_is_one_line_naming_it(command: list[str]) -> None:
    port = closed_port()
    result = subprocess.run(
        [sys.executable, "-m", "monitor", *command],
        env={"LIQMON_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"liqmon: error: cannot reach Kafka at 127.0.0.1:{port}: is it running?")


def test_a_metrics_port_in_use_is_one_line_naming_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "monitor", "run", "--instruments", INSTRUMENTS],
            env={"LIQMON_SERVICE__HTTP_PORT": str(port), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"liqmon: error: cannot serve /metrics on 127.0.0.1:{port} (Address already in use); "
        "set service.http_host/service.http_port (LIQMON_SERVICE__HTTP_PORT) to a free "
        "address, or 0 for any free port"
    )
