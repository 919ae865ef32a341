"""``liqmon run`` as a subprocess, driven the way an operator would: env settings, /metrics.

The benchmark talks to the monitor only through its public surfaces (topics, the
HTTP endpoints, signals), so what it measures is the product as deployed, not an
in-process shortcut. ``SIGSTOP``/``SIGCONT`` let a backlog build up without the
monitor's consumers noticing anything but a pause (keep it well under the consumer
group's session timeout, 10 s by default, or a rebalance rebuilds the book).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final, NamedTuple

from prometheus_client.parser import text_string_to_metric_families

from streams.settings import TopicSettings

_HTTP_TIMEOUT_S: Final = 5.0
Labels = frozenset[tuple[str, str]]


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def http_get(port: int, path: str) -> tuple[int, bytes]:
    """Status and body of ``GET path`` on 127.0.0.1 (the monitor closes every connection)."""
    async with asyncio.timeout(_HTTP_TIMEOUT_S):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            await writer.drain()
            response = await reader.read()
        finally:
            writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


class Scrape:
    """One /metrics exposition, as ``{(sample name, labels): value}``."""

    def __init__(self, text: str) -> None:
        self.samples: dict[tuple[str, Labels], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 for a labelled counter that has not been touched yet."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str) -> float:
        """Sum of the sample over all its label sets."""
        return sum(v for (n, _), v in self.samples.items() if n == name)

    def series(self, name: str) -> int:
        """How many label sets the sample has."""
        return sum(1 for n, _ in self.samples if n == name)

    def buckets(self, name: str) -> dict[float, float]:
        """Cumulative counts of a histogram by upper bound (``le``)."""
        out: dict[float, float] = {}
        for (n, labels), v in self.samples.items():
            if n == f"{name}_bucket":
                out[float(dict(labels)["le"])] = v
        return dict(sorted(out.items()))


class Activity(NamedTuple):
    """What the monitor did between two scrapes: cycles, their mean length, events, ticks."""

    cycles: int
    mean_cycle_ms: float
    cycle_seconds: float
    events: int
    ticks: int
    units_revalued: int

    @classmethod
    def between(cls, before: Scrape, after: Scrape, prices_topic: str) -> Activity:
        def grown(name: str, **labels: str) -> float:
            return after.value(name, **labels) - before.value(name, **labels)

        cycles = int(grown("liqmon_cycle_duration_seconds_count"))
        cycle_s = grown("liqmon_cycle_duration_seconds_sum")
        events = after.total("liqmon_events_published_total") - before.total(
            "liqmon_events_published_total"
        )
        return cls(
            cycles=cycles,
            mean_cycle_ms=cycle_s / cycles * 1000 if cycles else 0.0,
            cycle_seconds=cycle_s,
            events=int(events),
            ticks=int(grown("liqmon_records_consumed_total", topic=prices_topic)),
            units_revalued=int(grown("liqmon_units_revalued_total")),
        )

    def figures(self, seconds: float) -> dict[str, float | int]:
        """The JSON fields of a figure: cycles, mean cycle, share of time in cycles, events,
        and the margin units a cycle revalued because a mark moved (price bands)."""
        per_cycle = self.cycles or 1
        return {
            "monitor_cycles": self.cycles,
            "monitor_ticks_per_cycle": round(self.ticks / per_cycle),
            "monitor_units_revalued_per_cycle": round(self.units_revalued / per_cycle),
            "monitor_mean_cycle_ms": round(self.mean_cycle_ms, 2),
            "monitor_time_in_cycles": round(self.cycle_seconds / seconds, 3),
            "events_published": self.events,
        }


class MonitorProcess:
    """One ``liqmon run`` on our topics, group and port; stderr goes to ``log_path``."""

    def __init__(
        self,
        root: Path,
        instruments: Path,
        topics: TopicSettings,
        group_id: str,
        log_path: Path,
        profile: tuple[str, Path] | None = None,
    ) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.profile_path = profile[1] if profile is not None else None
        bin_dir = root / ".venv" / "bin"
        arguments = ["run", "--instruments", str(instruments)]
        if profile is None:
            self._command = [str(bin_dir / "liqmon"), *arguments]
        else:
            launcher = Path(__file__).with_name("_e2e_profile.py")
            mode, out = profile
            self._command = [
                str(bin_dir / "python"),
                str(launcher),
                mode,
                str(out),
                "--",
                *arguments,
            ]
        self._env = {
            **os.environ,
            "LIQMON_TOPICS__PRICES": topics.prices,
            "LIQMON_TOPICS__FILLS": topics.fills,
            "LIQMON_TOPICS__MARGIN_EVENTS": topics.margin_events,
            "LIQMON_TOPICS__STATE": topics.state,
            "LIQMON_TOPICS__DLQ": topics.dlq,
            "LIQMON_TOPICS__SOLVENCY": topics.solvency,
            "LIQMON_TOPICS__FILLS_PARTITIONS": str(topics.fills_partitions),
            "LIQMON_SERVICE__GROUP_ID": group_id,
            "LIQMON_SERVICE__HTTP_PORT": str(self.port),
            # LIQMON_BENCH_LOG_LEVEL=info keeps the monitor's timings (rebuild, snapshots).
            "LIQMON_LOG__LEVEL": os.environ.get("LIQMON_BENCH_LOG_LEVEL", "warning"),
            "LIQMON_LOG__FORMAT": "json",
        }
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "the monitor is not started"
        return self._process.pid

    async def start(self, timeout_s: float) -> None:
        """Spawn the monitor and wait until /readyz answers 200."""
        with self.log_path.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                *self._command, env=self._env, stdout=log, stderr=log
            )

        async def ready() -> bool:
            try:
                return (await http_get(self.port, "/readyz"))[0] == 200
            except OSError:
                return False

        await self.until_async(ready, "the monitor to answer /readyz with 200", timeout_s)

    async def scrape(self, *names: str) -> Scrape:
        """/metrics: every series, or only those ``names`` (``name[]``: the monitor then
        collects those alone, a fraction of a millisecond against a few for all)."""
        query = "&".join(f"name[]={name}" for name in names)
        status, body = await http_get(self.port, f"/metrics?{query}" if query else "/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return Scrape(body.decode())

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def profile_start(self) -> None:
        """Start the profiler of a monitor launched with ``profile`` (see _e2e_profile)."""
        os.kill(self.pid, signal.SIGUSR1)

    async def profile_stop(self, timeout_s: float = 30.0) -> Path:
        """Stop the profiler; return the file it wrote."""
        assert self.profile_path is not None, "the monitor was not started with a profiler"
        path = self.profile_path
        path.unlink(missing_ok=True)
        os.kill(self.pid, signal.SIGUSR2)

        async def written() -> bool:
            return path.exists() and path.stat().st_size > 0

        await self.until_async(written, f"the profile {path}", timeout_s)
        return path

    def check_alive(self) -> None:
        if self._process is not None and self._process.returncode is not None:
            raise RuntimeError(
                f"the monitor exited with {self._process.returncode}; its log:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def until_async(
        self,
        condition: Callable[[], Awaitable[bool]],
        what: str,
        timeout_s: float,
        every_s: float | Callable[[], float] = 0.05,
    ) -> None:
        """Await ``condition()`` every ``every_s`` (seconds, or a function giving the next
        wait) until it is true; fail after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_alive()
            if await condition():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
            await asyncio.sleep(every_s() if callable(every_s) else every_s)

    async def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM (the monitor finishes its cycle, commits, exits); SIGKILL after the deadline."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return None if process is None else process.returncode
        os.kill(process.pid, signal.SIGCONT)  # a paused process cannot act on SIGTERM
        process.terminate()
        try:
            async with asyncio.timeout(timeout_s):
                return await process.wait()
        except TimeoutError:
            print("# the monitor ignored SIGTERM; killing it", file=sys.stderr)
            process.kill()
            return await process.wait()
