"""The pieces of the fault-injection proof (issue 12): recorded input, replay, faults.

A fault-free reference run of ``liqmon run`` is fed by ``liqmon simulate`` itself (fixed
seed, ``--start-ts`` pinned, so its records are byte-identical whenever they are made).
Its input is then read back from its topics and replayed, record for record and at the
same rate, into a fresh set of topics for each fault run, through a :class:`Replay` that
can pause (the broker is down) without a catch-up burst afterwards.

The verdict (``tests.integration.fault_verdict``) checks the fault run's events, as a
read_committed reader sees them, against the reference's.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from monitor.config import ServiceSettings
from monitor.instruments import load_instrument_file
from monitor.schema import Instrument
from streams import OutboundRecord, Producer, TableConsumer
from streams.settings import KafkaSettings, TopicSettings
from streams.table_consumer import topic_partitions
from streams.topics import create_topics, delete_topics, topic_specs
from tests.integration.liqmon_process import LiqmonProcess, metric_value
from tests.integration.monitor_harness import MonitorHarness

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_INSTRUMENTS = ROOT / "deploy" / "instruments.example.json"
#: Static group membership (issue 12), passed only once the service has the setting.
HAS_INSTANCE_ID = "instance_id" in ServiceSettings.__struct_fields__
HAS_EXACTLY_ONCE = "exactly_once" in ServiceSettings.__struct_fields__
_NO_COMPACTION_LAG = {"min.compaction.lag.ms": "3600000"}


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass(frozen=True)
class Plan:
    """The size of the proof; ``make soak`` raises it through ``LIQMON_FAULTS_*``."""

    seed: int = field(default_factory=lambda: _env_int("LIQMON_FAULTS_SEED", 12))
    accounts: int = field(default_factory=lambda: _env_int("LIQMON_FAULTS_ACCOUNTS", 2000))
    rate: float = field(default_factory=lambda: _env_float("LIQMON_FAULTS_RATE", 100.0))
    duration_s: float = field(default_factory=lambda: _env_float("LIQMON_FAULTS_DURATION", 30.0))
    kills: int = field(default_factory=lambda: _env_int("LIQMON_FAULTS_KILLS", 10))
    start_ts: int = 1_780_000_000_000

    @property
    def crash_args(self) -> list[str]:
        # The fall lasts most of the run, so transitions happen all along it.
        at = max(1.0, self.duration_s * 0.1)
        seconds = max(1.0, self.duration_s * 0.6)
        return ["--crash-at", f"{at:g}", "--crash-seconds", f"{seconds:g}", "--crash-drop", "0.3"]


def example_instruments() -> list[Instrument]:
    return list(load_instrument_file(EXAMPLE_INSTRUMENTS).instruments)


# ---------------------------------------------------------------------- topics and runs


async def fresh_topics(kafka: KafkaSettings, stem: str) -> TopicSettings:
    """liqmon's five topics under a unique prefix, created now (delete with drop_topics)."""
    settings = TopicSettings(fills_partitions=3).prefixed(f"fi-{stem}-{uuid.uuid4().hex[:8]}-")
    # As created by the product, but the broker may not compact ticks away for an hour: a
    # monitor re-reading the price table after a kill must see (and count) every tick.
    specs = [
        msgspec.structs.replace(spec, configs={**spec.configs, **_NO_COMPACTION_LAG})
        if spec.name == settings.prices
        else spec
        for spec in topic_specs(settings)
    ]
    await create_topics(kafka, specs)
    return settings


async def drop_topics(kafka: KafkaSettings, topics: TopicSettings) -> None:
    await delete_topics(kafka, topics.names())


def new_process(h: MonitorHarness, name: str, instruments: Sequence[Instrument]) -> LiqmonProcess:
    """A ``liqmon run`` of this harness; ``name`` is its static member id where supported."""
    service: dict[str, Any] = {"sweep_interval_s": 5.0}
    if HAS_INSTANCE_ID:
        service["instance_id"] = f"{h.group_id}-{name}"
    return LiqmonProcess(h, instruments, **service)


async def run_simulate(h: MonitorHarness, plan: Plan) -> None:
    """``liqmon simulate`` into the harness's topics, paced at ``plan.rate``; wait for it."""
    topics = h.topics
    env = {
        **os.environ,
        "LIQMON_KAFKA__BOOTSTRAP_SERVERS": h.kafka.bootstrap_servers,
        "LIQMON_TOPICS__PRICES": topics.prices,
        "LIQMON_TOPICS__FILLS": topics.fills,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "simulate",
        "--seed",
        str(plan.seed),
        "--accounts",
        str(plan.accounts),
        "--scenario",
        "crash",
        *plan.crash_args,
        "--start-ts",
        str(plan.start_ts),
        "--rate",
        f"{plan.rate:g}",
        "--duration",
        f"{plan.duration_s:g}",
        "--quiet",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), plan.duration_s + 120)
    assert process.returncode == 0, f"liqmon simulate failed:\n{output.decode()[-2000:]}"


# ---------------------------------------------------------------------- recorded input


@dataclass(frozen=True)
class RecordedInput:
    """What the reference run was fed, in publication order (ledger: per partition)."""

    opening: list[tuple[bytes, bytes]]  # one tick per instrument
    ledger: list[tuple[bytes, bytes]]
    stream: list[tuple[bytes, bytes]]  # the paced ticks
    rate: float
    accounts: list[str]

    @property
    def ticks(self) -> int:
        return len(self.opening) + len(self.stream)


async def read_input(h: MonitorHarness, instruments: int, rate: float) -> RecordedInput:
    prices = await h.read_all(h.topics.prices)
    prices.sort(key=lambda r: r.offset)
    ledger = await h.read_all(h.topics.fills)
    ledger.sort(key=lambda r: (r.partition, r.offset))
    pairs = [(r.key or b"", r.value or b"") for r in prices]
    accounts = sorted({(r.key or b"").decode() for r in ledger})
    return RecordedInput(
        opening=pairs[:instruments],
        ledger=[(r.key or b"", r.value or b"") for r in ledger],
        stream=pairs[instruments:],
        rate=rate,
        accounts=accounts,
    )


class Replay:
    """Publishes a :class:`RecordedInput` to new topics: opening ticks, ledger, paced ticks.

    Tick ``i`` of the stream is due ``i / rate`` seconds after the stream starts, plus the
    time spent paused: :meth:`pause` (before the broker goes down) waits until no send is
    in flight, and :meth:`resume` shifts the schedule, so no burst follows an outage.
    """

    def __init__(self, producer: Producer, topics: TopicSettings, data: RecordedInput) -> None:
        self._producer, self._topics, self._data = producer, topics, data
        self._open = asyncio.Event()
        self._open.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._paused_s = 0.0
        self.sent = 0
        self.started_at: float | None = None
        self.finished = False
        self.progress = asyncio.Condition()

    def _records(self, topic: str, pairs: Iterable[tuple[bytes, bytes]]) -> list[OutboundRecord]:
        return [OutboundRecord(topic, key, value) for key, value in pairs]

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self.finished = True
            async with self.progress:
                self.progress.notify_all()

    async def _run(self) -> None:
        data, topics = self._data, self._topics
        await self._producer.send_batch(self._records(topics.prices, data.opening))
        ledger = self._records(topics.fills, data.ledger)
        for start in range(0, len(ledger), 10_000):
            await self._producer.send_batch(ledger[start : start + 10_000])
        began = time.monotonic()
        self.started_at = began
        stream = data.stream
        while self.sent < len(stream):
            await self._open.wait()
            now = time.monotonic()
            due = min(len(stream), int((now - began - self._paused_s) * data.rate) + 1)
            if due > self.sent:
                self._idle.clear()
                try:
                    batch = stream[self.sent : due]
                    await self._producer.send_batch(self._records(topics.prices, batch))
                finally:
                    self._idle.set()
                self.sent = due
                async with self.progress:
                    self.progress.notify_all()
            next_due = began + self._paused_s + self.sent / data.rate
            await asyncio.sleep(max(0.0, next_due - time.monotonic()))

    def elapsed_s(self) -> float:
        """Seconds of the tick stream played so far (pauses excluded)."""
        if self.started_at is None:
            return 0.0
        return self.sent / self._data.rate

    async def pause(self) -> float:
        self._open.clear()
        await self._idle.wait()
        return time.monotonic()

    def resume(self, paused_at: float) -> None:
        self._paused_s += time.monotonic() - paused_at
        self._open.set()


async def wait_played(replay: Replay, task: asyncio.Task[None], seconds: float) -> None:
    """Wait until ``seconds`` of the stream have been published (or the replay ended)."""
    async with replay.progress:
        await replay.progress.wait_for(lambda: replay.elapsed_s() >= seconds or replay.finished)
    if replay.finished:
        await asyncio.wait([task])
        task.result()


# ---------------------------------------------------------------------- settling


async def committed_behind(kafka: KafkaSettings, topic: str, group_id: str) -> int:
    """Records of ``topic`` the group has not committed past (end offset - committed)."""
    partitions = await topic_partitions(kafka, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await consumer.start()
    await admin.start()
    try:
        ends = await consumer.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(group_id)
        return sum(ends[tp] - (committed[tp].offset if tp in committed else 0) for tp in partitions)
    finally:
        await consumer.stop()
        await admin.close()


async def group_members(kafka: KafkaSettings, group_id: str) -> tuple[str, int]:
    """The consumer group's state and how many members it has (dead ones count until
    their session expires)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group_id])
    finally:
        await admin.close()
    [group] = response.groups
    _error, _name, state, _type, _protocol, members = group[:6]
    return str(state), len(members)


async def settle(
    h: MonitorHarness, running: Sequence[LiqmonProcess], ticks: int, timeout_s: float
) -> tuple[bool, str]:
    """Wait until the group is stable with exactly the running instances as members (no
    dead member holds partitions), each of them ready, having consumed every tick, and
    the group has committed the whole ledger; (done, what was missing at the deadline)."""
    series = f'liqmon_records_consumed_total{{topic="{h.topics.prices}"}}'
    deadline = time.monotonic() + timeout_s
    while True:
        missing = []
        state, members = await group_members(h.kafka, h.group_id)
        if state != "Stable" or members != len(running):
            missing.append(f"group {state} with {members} members for {len(running)} instances")
        for proc in running:
            status, reason = await proc.readyz()
            if status != 200:
                missing.append(f"instance on :{proc.port} {reason}")
            consumed = metric_value(await proc.metrics(), series) or 0.0
            if consumed < ticks:
                missing.append(f"instance on :{proc.port} consumed {consumed:.0f}/{ticks} ticks")
        behind = await committed_behind(h.kafka, h.topics.fills, h.group_id)
        if behind:
            missing.append(f"{behind} ledger records not committed")
        if not missing:
            return True, ""
        if time.monotonic() > deadline:
            return False, "; ".join(missing)
        await asyncio.sleep(0.2)


async def committed_events(kafka: KafkaSettings, topic: str) -> list[dict[str, Any]]:
    """Every event of ``topic`` as a read_committed reader sees it, in partition order."""
    records = []
    async with TableConsumer(kafka, topic=topic, isolation_level="read_committed") as table:
        async with asyncio.timeout(60):
            while not table.caught_up:
                records += await table.poll_batch(10_000, 100)
    records.sort(key=lambda r: (r.partition, r.offset))
    decode = msgspec.json.Decoder(dict[str, Any]).decode
    return [decode(r.value) for r in records if r.value]


async def account_history(
    kafka: KafkaSettings, topics: TopicSettings, accounts: set[str]
) -> list[str]:
    """Every record about ``accounts`` in ``margin-events`` and ``liqmon-state`` (their
    unit states), with partition, offset and record time, and whether a read_committed
    reader sees it (``aborted`` marks one only a read_uncommitted reader does): what a
    failed fault run leaves to tell a lost event from one never produced, read before its
    topics are dropped."""
    wanted = {f"account:{a}".encode() for a in accounts}
    lines: list[str] = []
    for topic in (topics.margin_events, topics.state):
        seen: dict[str, set[tuple[int, int]]] = {}
        found: list[Any] = []
        for isolation in ("read_committed", "read_uncommitted"):
            got: list[Any] = []
            async with TableConsumer(kafka, topic=topic, isolation_level=isolation) as table:
                async with asyncio.timeout(60):
                    while not table.caught_up:
                        got += await table.poll_batch(10_000, 100)
            seen[isolation] = {(r.partition, r.offset) for r in got}
            if isolation == "read_uncommitted":
                found = got
        for r in sorted(found, key=lambda r: (r.partition, r.offset)):
            if topic == topics.margin_events:
                body = msgspec.json.decode(r.value or b"{}")
                if body.get("account") not in accounts:
                    continue
                what = (
                    f"{body.get('account')}/{body.get('symbol')} {body.get('previous_state')}"
                    f" -> {body.get('state')} detected {body.get('detected_ts')} collapsed "
                    f"{body.get('collapsed')}"
                )
            elif r.key in wanted:
                what = (r.value or b"").decode(errors="replace")[:300]
            else:
                continue
            committed = (r.partition, r.offset) in seen["read_committed"]
            lines.append(
                f"{topic}[{r.partition}]@{r.offset} t={r.timestamp}"
                f"{'' if committed else ' aborted'}: {what}"
            )
    return lines


def kill_moments(plan: Plan, seed: int) -> list[float]:
    """``plan.kills`` seeded moments (seconds of stream played), spread over the run."""
    rng = random.Random(seed)
    lo, hi = 1.0, plan.duration_s * 0.9
    return sorted(rng.uniform(lo, hi) for _ in range(plan.kills))
