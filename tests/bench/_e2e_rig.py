"""The end-to-end benchmark's rig: broker, unique topics, the monitor and its 100,000 accounts.

One :class:`Rig` per run. :meth:`Rig.set_up` creates the topics under a unique
``bench-<id>-`` prefix, writes the instruments file, publishes the opening prices and
the ledger, and starts ``liqmon run``, which rebuilds the book from the ledger before it
is ready (the path of a restarting monitor); :meth:`Rig.tear_down` stops the monitor
(SIGTERM) and deletes the topics, also after a failure.

The prices topics are created as the product creates them (compacted) plus
``min.compaction.lag.ms`` of an hour: the local broker rolls 16 MB segments and cleans
every 5 s, and would otherwise compact a backlog of ticks away between the monitor's
run and the baseline's, leaving the two different records to read.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from _e2e_kafka import commit_group, produce_file
from _e2e_market import SENTINEL_SYMBOL, ledger_lines, opening_lines, write_instruments
from _e2e_monitor import MonitorProcess

from streams.broker import LocalBroker
from streams.settings import KafkaSettings, TopicSettings
from streams.topics import TopicSpec, create_topics, delete_topics, topic_specs

CONSUMED: Final = "liqmon_records_consumed_total"
#: Least and most time between two scrapes of ``until_consumed`` (see there).
SCRAPE_MIN_S: Final = 0.005
SCRAPE_MAX_S: Final = 0.25
RSS: Final = "process_resident_memory_bytes"
_NO_COMPACTION_LAG: Final = {"min.compaction.lag.ms": "3600000"}
_LOCAL_HOSTS: Final = {"127.0.0.1", "localhost"}


def progress(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


def _local_broker(root: Path, kafka: KafkaSettings) -> LocalBroker | None:
    """The project's own broker that ``kafka`` points at, or None for another one."""
    host, _, port = kafka.bootstrap_servers.split(",")[0].strip().rpartition(":")
    return LocalBroker(root, port=int(port)) if host in _LOCAL_HOSTS else None


def ensure_broker(root: Path, kafka: KafkaSettings) -> None:
    """Start the local broker unless it runs already (as tests/conftest.py does)."""
    broker = _local_broker(root, kafka)
    if broker is not None:
        progress(broker.start(timeout_s=120).describe())


# A pause line of the broker's GC log: "[2026-12-03T07:07:03.797+0000][...] ... 135.431ms".
_GC_PAUSE = re.compile(r"^\[(?P<at>[^\]]+)\].*\bPause\b.*?(?P<ms>[0-9.]+)ms\s*$")


def broker_pauses(root: Path, kafka: KafkaSettings, start_ms: float, end_ms: float) -> Any:
    """The local broker's stop-the-world GC pauses that began from ``start_ms`` to
    ``end_ms`` (wall clock): ``{"count", "total_ms", "max_ms"}`` from its GC log, or
    None when the broker is not the local one (no log to read)."""
    broker = _local_broker(root, kafka)
    log = None if broker is None else broker.state_dir / "gc.log"
    if log is None or not log.is_file():
        return None
    pauses = []
    for line in log.read_text(errors="replace").splitlines():
        found = _GC_PAUSE.match(line)
        if found is None:
            continue
        at = datetime.strptime(found["at"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() * 1000
        if start_ms <= at <= end_ms:
            pauses.append(float(found["ms"]))
    return {
        "count": len(pauses),
        "total_ms": round(sum(pauses, 0.0), 1),
        "max_ms": round(max(pauses, default=0.0), 1),
    }


class Rig:
    """Topics, data and the monitor of one benchmark run."""

    def __init__(self, root: Path, kafka: KafkaSettings) -> None:
        self.root, self.kafka = root, kafka
        run = uuid.uuid4().hex[:10]
        self.topics = TopicSettings().prefixed(f"bench-{run}-")
        self.floor_topic = f"bench-{run}-floor-prices"
        self.group_id = f"bench-{run}"
        self.tmp = Path(tempfile.mkdtemp(prefix="liqmon-bench-e2e-"))
        self.market_prices: dict[str, float] = {}
        self._monitor: MonitorProcess | None = None
        self._next_chunk = 0
        self._created: list[str] = []
        self._profile: str | None = None
        self._starts = 0
        self.ledger_records = 0
        self.rss_empty_bytes = 0.0  # the monitor's resident memory, ready, before the ledger
        self.rss_booked_bytes = 0.0  # and once the whole ledger is applied
        self.keep_logs = False  # a figure missed its target: keep the monitor's logs

    @property
    def monitor(self) -> MonitorProcess:
        assert self._monitor is not None, "call set_up() first"
        return self._monitor

    def take_chunks(self, count: int) -> int:
        """Reserve ``count`` tick-chunk numbers; return the first (they never repeat in a run,
        so the sentinel level keeps alternating across phases)."""
        first, self._next_chunk = self._next_chunk, self._next_chunk + count
        return first

    async def set_up(
        self,
        accounts: int,
        seed: int,
        profile: str | None,
        positions_per_account: int | None = None,
    ) -> None:
        """Topics, instruments, opening prices, a ready monitor, and its ledger applied
        (``positions_per_account``: see ``ledger_lines``)."""
        await self._create_topics()
        instruments = self.tmp / "instruments.json"
        market, prices = write_instruments(
            self.root / "deploy" / "instruments.example.json", instruments
        )
        self.market_prices = {s: p for s, p in prices.items() if s != SENTINEL_SYMBOL}
        now = time.time_ns() // 1_000_000
        began = time.perf_counter()
        ledger = ledger_lines(market, prices, accounts, seed, now, positions_per_account)
        progress(
            f"{accounts:,} accounts: {len(ledger):,} ledger records rendered in "
            f"{time.perf_counter() - began:.1f}s"
        )
        opening = self.tmp / "opening.txt"
        opening.write_bytes(b"\n".join(opening_lines(prices, now)) + b"\n")
        await produce_file(self.kafka, self.topics.prices, opening)

        self._profile = profile
        # The memory baseline: a monitor ready with an empty book (a group of its own).
        await self.start_monitor(timeout_s=60, group_id=f"{self.group_id}-empty")
        self.rss_empty_bytes = await self.rss_bytes()
        code = await self.monitor.stop()
        if code != 0:
            raise RuntimeError(f"the empty monitor exited with {code}:\n{self.monitor.log_tail()}")
        # The ledger goes in first, marked as consumed by the group as after an earlier
        # run, so the monitor rebuilds the book from it before it is ready: the path of
        # a monitor restarting at a venue, 3-4x faster than judging each record live.
        self.ledger_records = len(ledger)
        ledger_file = self.tmp / "ledger.txt"
        ledger_file.write_bytes(b"\n".join(ledger) + b"\n")
        del ledger
        began = time.perf_counter()
        await produce_file(self.kafka, self.topics.fills, ledger_file)
        await commit_group(self.kafka, self.topics.fills, self.group_id)
        produced = time.perf_counter() - began
        began = time.perf_counter()
        # At least 5,000 records/s however large the book.
        await self.start_monitor(timeout_s=max(180.0, self.ledger_records / 5_000))
        seconds = time.perf_counter() - began
        self.rss_booked_bytes = await self.rss_bytes()
        self.reset_peak_rss()
        progress(
            f"ledger of {self.ledger_records:,} records produced in {produced:.1f}s; a monitor "
            f"started on it was ready in {seconds:.1f}s ({self.ledger_records / seconds:,.0f} "
            f"records/s; pid {self.monitor.pid}, port {self.monitor.port}, log "
            f"{self.monitor.log_path})"
        )

    async def start_monitor(self, timeout_s: float, group_id: str | None = None) -> None:
        """Start a ``liqmon run`` on the rig's topics and group (the previous one must have
        stopped) and wait until it is ready; each start logs to a file of its own."""
        self._starts += 1
        profiler = None if self._profile is None else (self._profile, self.tmp / "profile.out")
        log = self.tmp / ("monitor.log" if self._starts == 1 else f"monitor-{self._starts}.log")
        self._monitor = MonitorProcess(
            self.root,
            self.tmp / "instruments.json",
            self.topics,
            group_id or self.group_id,
            log,
            profiler,
        )
        await self._monitor.start(timeout_s=timeout_s)

    async def rss_bytes(self) -> float:
        """The monitor's resident memory, as its /metrics reports it."""
        return (await self.monitor.scrape(RSS)).value(RSS)

    def reset_peak_rss(self) -> None:
        """Start the monitor's peak resident memory (``VmHWM``) afresh from now (Linux:
        ``/proc/<pid>/clear_refs``), so the peak read later is that of the runs, not the
        rebuild's."""
        Path(f"/proc/{self.monitor.pid}/clear_refs").write_text("5")

    def peak_rss_bytes(self) -> float:
        """The monitor's peak resident memory since :meth:`reset_peak_rss` (``VmHWM``)."""
        for line in Path(f"/proc/{self.monitor.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) * 1024
        raise RuntimeError(f"no VmHWM in /proc/{self.monitor.pid}/status")

    async def until_consumed(
        self, topic: str, target: float, timeout_s: float
    ) -> tuple[float, int]:
        """Scrape /metrics until the monitor has consumed ``target`` records of ``topic``;
        return ``time.perf_counter()`` at the scrape that saw it, and how many scrapes.

        A scrape costs the monitor's loop what a bare consumer never pays: a few
        milliseconds for the exposition of some 400 series, so only the consumed counter
        is asked for (``name[]``), and the scrapes are spaced by half the time the rate
        seen so far says is left, between ``SCRAPE_MIN_S`` (the precision of the end)
        and ``SCRAPE_MAX_S``: about fifteen for a two-second round."""
        monitor = self.monitor
        seen: list[tuple[float, float]] = []  # (time, records consumed) at each scrape

        async def reached() -> bool:
            value = (await monitor.scrape(CONSUMED)).value(CONSUMED, topic=topic)
            seen.append((time.perf_counter(), value))
            return value >= target

        def next_wait() -> float:
            (first_at, first), (now, value) = seen[0], seen[-1]
            moved = value - first
            left = (target - value) * (now - first_at) / moved if moved > 0 else SCRAPE_MAX_S
            return min(SCRAPE_MAX_S, max(SCRAPE_MIN_S, left / 2))

        what = f"the monitor to consume {target:,.0f} records of {topic}"
        await monitor.until_async(reached, what, timeout_s, next_wait)
        return seen[-1][0], len(seen)

    async def tear_down(self, *, keep_files: bool) -> None:
        """Stop the monitor, delete the topics, and the rendered files unless ``keep_files``."""
        if self._monitor is not None:
            code = await self._monitor.stop()
            progress(f"monitor stopped (exit code {code})")
            if code not in (0, None):
                progress(f"monitor log tail:\n{self._monitor.log_tail()}")
        if self._created:
            await delete_topics(self.kafka, self._created)
            progress(f"deleted {len(self._created)} topics {self.topics.prices[:-6]}*")
        if keep_files:
            progress(f"kept the rendered input and the monitor's log in {self.tmp}")
            return
        if self.keep_logs:  # the logs only: the rendered input runs to hundreds of MB
            kept = Path(tempfile.mkdtemp(prefix="liqmon-bench-e2e-logs-"))
            for log in self.tmp.glob("*.log"):
                shutil.move(log, kept / log.name)
            progress(f"a figure missed its target: kept the monitor's logs in {kept}")
        shutil.rmtree(self.tmp, ignore_errors=True)

    async def _create_topics(self) -> None:
        specs = [
            _with_compaction_lag(spec) if spec.name == self.topics.prices else spec
            for spec in topic_specs(self.topics)
        ]
        prices = specs[0]
        floor = TopicSpec(
            name=self.floor_topic,
            partitions=prices.partitions,
            replication_factor=prices.replication_factor,
            configs=prices.configs,
        )
        self._created = [*(spec.name for spec in specs), floor.name]
        await create_topics(self.kafka, [*specs, floor])


def _with_compaction_lag(spec: TopicSpec) -> TopicSpec:
    return TopicSpec(
        name=spec.name,
        partitions=spec.partitions,
        replication_factor=spec.replication_factor,
        configs={**spec.configs, **_NO_COMPACTION_LAG},
    )
