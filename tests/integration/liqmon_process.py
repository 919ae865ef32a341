"""`liqmon run` as a separate process, as operators start it, on a harness's topics.

Tests start it, restart it (gracefully or with SIGKILL), read its probes and metrics, and
fail at once, with the tail of its log, if it exits while it should be running.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from monitor.schema import Fill, Instrument, MarginEvent, MarginSettings, PriceTick, Transfer
from tests.integration.monitor_harness import INSTRUMENTS, MonitorHarness, now_ms


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def http_get(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def metric_value(exposition: bytes, series: str) -> float | None:
    """The value of ``series`` (name with its labels, as exposed) or None if absent."""
    for line in exposition.decode().splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    return None


class LiqmonProcess:
    """One ``python -m monitor run`` process at a time, restartable."""

    def __init__(
        self,
        harness: MonitorHarness,
        instruments: Sequence[Instrument] = INSTRUMENTS,
        *,
        env: dict[str, str] | None = None,
        **service: Any,
    ) -> None:
        self.harness = harness
        self.extra_env = dict(env or {})
        self._dir = Path(tempfile.mkdtemp(prefix="liqmon-proc-"))
        self.port = free_port()
        self.service = {"poll_timeout_ms": 50, "sweep_interval_s": 1.0, **service}
        self.process: asyncio.subprocess.Process | None = None
        self._log = self._dir / "liqmon.log"
        self.write_instruments(instruments)

    def write_instruments(self, instruments: Sequence[Instrument] | bytes) -> None:
        """The instruments file the next start reads (a delisting is a shorter file;
        bytes are written as they are)."""
        path = self._dir / "instruments.json"
        if isinstance(instruments, bytes):
            path.write_bytes(instruments)
        else:
            path.write_bytes(msgspec.json.encode({"instruments": list(instruments)}))

    def env(self) -> dict[str, str]:
        h = self.harness
        topics = h.topics
        env = {
            **os.environ,
            "LIQMON_KAFKA__BOOTSTRAP_SERVERS": h.kafka.bootstrap_servers,
            "LIQMON_TOPICS__PRICES": topics.prices,
            "LIQMON_TOPICS__FILLS": topics.fills,
            "LIQMON_TOPICS__MARGIN_EVENTS": topics.margin_events,
            "LIQMON_TOPICS__STATE": topics.state,
            "LIQMON_TOPICS__DLQ": topics.dlq,
            "LIQMON_SERVICE__GROUP_ID": h.group_id,
            "LIQMON_SERVICE__HTTP_PORT": str(self.port),
            "LIQMON_LOG__FORMAT": "json",
        }
        for name, value in self.service.items():
            env[f"LIQMON_SERVICE__{name.upper()}"] = str(value)
        env.update(self.extra_env)
        return env

    async def start(self, ready_within_s: float = 60.0) -> None:
        """Start and wait (with a deadline) until ``/readyz`` answers 200."""
        await self.spawn()
        await self.wait_ready(ready_within_s)

    async def spawn(self) -> None:
        """Start the process and return at once (it is not ready yet)."""
        assert self.process is None or self.process.returncode is not None
        log = self._log.open("ab")  # the child inherits the descriptor
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "monitor",
                "run",
                "--instruments",
                str(self._dir / "instruments.json"),
                env=self.env(),
                stdout=log,
                stderr=log,
            )
        finally:
            log.close()

    async def readyz(self) -> tuple[int, str]:
        """``/readyz`` status and body now; (0, reason) while nothing listens yet."""
        try:
            status, body = await http_get(self.port, "/readyz")
        except OSError as exc:
            return 0, f"no answer ({exc.__class__.__name__})"
        return status, body.decode(errors="replace").strip()

    async def wait_ready(self, ready_within_s: float = 60.0) -> None:
        """Wait (with a deadline) until ``/readyz`` answers 200; fail if the process exits."""
        deadline = time.monotonic() + ready_within_s
        while True:
            self.assert_running()
            try:
                if (await http_get(self.port, "/readyz"))[0] == 200:
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, f"not ready in {ready_within_s}s\n{self.tail()}"
            await asyncio.sleep(0.05)

    async def stop(self, *, kill: bool = False) -> int:
        """SIGTERM (or SIGKILL) and wait; returns the exit code."""
        process = self.process
        assert process is not None
        if process.returncode is None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
        return code

    async def restart(self, *, kill: bool = False) -> None:
        code = await self.stop(kill=kill)
        assert kill or code == 0, f"exit code {code} on SIGTERM\n{self.tail()}"
        await self.start()

    def assert_running(self) -> None:
        process = self.process
        assert process is not None, "liqmon run was never started"
        assert process.returncode is None, (
            f"liqmon run exited with {process.returncode}\n{self.tail()}"
        )

    def tail(self, lines: int = 30) -> str:
        if not self._log.exists():
            return ""
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])

    def log_text(self) -> str:
        return self._log.read_text(errors="replace") if self._log.exists() else ""

    async def metrics(self) -> bytes:
        self.assert_running()
        status, body = await http_get(self.port, "/metrics")
        assert status == 200
        return body

    async def wait_metric(
        self, series: str, condition: Any, what: str, timeout_s: float = 30.0
    ) -> float:
        """Re-read /metrics until ``condition(value)`` holds for ``series`` (deadline)."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = metric_value(await self.metrics(), series)
            if value is not None and condition(value):
                return value
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {series}={value}"
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def judges_a_normal_account(
    h: MonitorHarness, proc: LiqmonProcess, account: str, price: float, symbol: str = "BTCUSDT"
) -> None:
    """A fresh account fed now gets its margin call, then its liquidation, as expected.

    90 contracts long at ``price`` with 10x leverage and 10 x ``price`` USDT: a 1.5% fall
    puts equity under initial margin, an 11% fall under maintenance margin (0.4%).
    """
    ts = now_ms()
    applied = 'liqmon_ledger_events_applied_total{type="fill"}'
    fills_before = metric_value(await proc.metrics(), applied) or 0.0
    await h.ledger(
        Transfer(
            transfer_id=f"t-{account}", account=account, asset="USDT", amount=10 * price, ts=ts
        ),
        MarginSettings(
            settings_id=f"s-{account}", account=account, symbol=symbol, leverage=10, ts=ts
        ),
        Fill(
            fill_id=f"f-{account}",
            account=account,
            symbol=symbol,
            side="buy",
            qty=90,
            price=price,
            ts=ts,
        ),
    )
    # The fill is booked at the current mark before the price moves.
    await proc.wait_metric(applied, lambda v: v > fills_before, f"{account}'s fill to apply")
    await h.prices(PriceTick(symbol=symbol, mark_price=price, ts=now_ms()))
    await h.prices(PriceTick(symbol=symbol, mark_price=price * 0.985, ts=now_ms()))
    await _wait_types(h, proc, account, ["margin_call"])
    await h.prices(PriceTick(symbol=symbol, mark_price=price * 0.89, ts=now_ms()))
    await _wait_types(h, proc, account, ["margin_call", "liquidation"])


async def _wait_types(
    h: MonitorHarness, proc: LiqmonProcess, account: str, types: list[str]
) -> list[MarginEvent]:
    deadline = time.monotonic() + 30
    while True:
        proc.assert_running()
        events = [e for e in await h.events() if e.account == account]
        if [e.type for e in events] == types:
            return events
        assert time.monotonic() < deadline, f"{account}: wanted {types}, got {events}"
        await asyncio.sleep(0.05)
