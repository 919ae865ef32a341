"""Kafka ends of the end-to-end benchmark: kcat producers and bare aiokafka consumers.

Producing goes through kcat (librdkafka, C): it writes about a million small records a
second here, where aiokafka's Python producer manages a few tens of thousands, so the
load generator is never what limits the monitor. Keyed records use the ``murmur2``
partitioner, the Java client's (and aiokafka's), so an account lands on the partition
any other producer would have chosen.

The consumers are the baselines: the same aiokafka client, settings and isolation level
as the monitor's price consumer (``streams.TableConsumer``), polling as many records at a
time as the monitor does (``PRICE_CHUNK``), doing only the per-record work every
consumer must do: fetch and ``msgspec``-decode. Read with aiokafka's own record objects, the
baseline is what anyone would write; read with the monitor's (``streams._lean``), it is
the same reader as the monitor's, and the ratio to it is what the monitor's own work
costs.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any, Final, NamedTuple

import msgspec
import numpy as np
from _e2e_market import SENTINEL_PREFIX, TickTape
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from monitor.config import load_settings
from monitor.intake import PRICE_CHUNK
from monitor.schema import MarginEvent, PriceTick
from streams import _lean as lean
from streams.settings import KafkaSettings, client_kwargs
from streams.table_consumer import topic_partitions

_KCAT_OPTIONS: Final = ("-K", "|", "-X", "topic.partitioner=murmur2_random", "-q")
_decode_tick = msgspec.json.Decoder(PriceTick).decode
_decode_event = msgspec.json.Decoder(MarginEvent).decode
_SERVICE: Final = load_settings(environ=os.environ).service  # the monitor's settings
#: Records per poll: the monitor's own poll size. Polling ``service.max_price_batch``
#: (200,000) at a time, as the baseline did until the seventeenth stop, held up to
#: 200,000 records at once, whose young collections and cache misses made it 20-30 %
#: slower (557,000 against 726,000 ticks/s at best, same offsets, same run).
_POLL_MAX_RECORDS: Final = PRICE_CHUNK


def now_ms() -> float:
    return time.time_ns() / 1e6


def _kcat_command(kafka: KafkaSettings, topic: str, *extra: str) -> list[str]:
    return ["kcat", "-P", "-b", kafka.bootstrap_servers, "-t", topic, *_KCAT_OPTIONS, *extra]


async def produce_file(kafka: KafkaSettings, topic: str, path: Path) -> None:
    """Produce every line of ``path`` (``key|value``) to ``topic``; returns once acknowledged."""
    process = await asyncio.create_subprocess_exec(
        *_kcat_command(kafka, topic, "-l", str(path)), stderr=asyncio.subprocess.PIPE
    )
    _, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"kcat failed producing {path} to {topic}: {err.decode()[-500:]}")


async def _partitions(kafka: KafkaSettings, topic: str) -> list[TopicPartition]:
    return [TopicPartition(tp.topic, tp.partition) for tp in await topic_partitions(kafka, topic)]


def _consumer(kafka: KafkaSettings) -> Any:
    """A consumer with the monitor's fetch settings (LIQMON_SERVICE__* overrides included),
    so the baseline fetches as much per request as the monitor does."""
    fetch = _SERVICE.max_partition_fetch_bytes
    return AIOKafkaConsumer(
        **client_kwargs(kafka),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=fetch,
        fetch_max_bytes=max(50 * 1024 * 1024, fetch),
    )


async def end_offsets(kafka: KafkaSettings, topic: str) -> dict[int, int]:
    """Log-end offset of every partition of ``topic``."""
    partitions = await _partitions(kafka, topic)
    consumer = _consumer(kafka)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def commit_group(kafka: KafkaSettings, topic: str, group_id: str) -> dict[int, int]:
    """Commit the end offsets of ``topic`` for ``group_id`` (a group with no member now),
    as a previous run that processed everything would have; return them."""
    ends = await end_offsets(kafka, topic)
    consumer = AIOKafkaConsumer(**client_kwargs(kafka), group_id=group_id, enable_auto_commit=False)
    await consumer.start()
    try:
        offsets = {TopicPartition(topic, p): o for p, o in ends.items()}
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()
    return ends


async def bare_consume(
    kafka: KafkaSettings,
    topic: str,
    start: dict[int, int],
    end: dict[int, int],
    *,
    lean_records: bool = False,
) -> tuple[int, float]:
    """Read and decode every record of ``topic`` from ``start`` up to ``end`` offsets,
    as aiokafka's ``ConsumerRecord`` s or, with ``lean_records``, as the monitor's
    ``LeanRecord`` s.

    Returns (records, seconds), the clock started just before the first fetch, after
    the consumer connected: the monitor's clock likewise starts with it connected.
    """
    if not lean_records:
        lean.uninstall()
    elif not lean.install():
        raise RuntimeError("this aiokafka cannot hand out lean records (streams._lean)")
    try:
        return await _bare_consume(kafka, topic, start, end, lean_records)
    finally:
        lean.uninstall()


async def _bare_consume(
    kafka: KafkaSettings,
    topic: str,
    start: dict[int, int],
    end: dict[int, int],
    lean_records: bool,
) -> tuple[int, float]:
    consumer = _consumer(kafka)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in start]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, start[tp.partition])
        remaining = {tp for tp in partitions if start[tp.partition] < end[tp.partition]}
        records = 0
        began = time.perf_counter()
        while remaining:
            batch = await consumer.getmany(timeout_ms=200, max_records=_POLL_MAX_RECORDS)
            for tp, items in batch.items():
                if items and isinstance(items[0], lean.LeanRecord) != lean_records:
                    raise RuntimeError(f"the baseline read {type(items[0]).__name__}s")
                for record in items:
                    _decode_tick(record.value)
                records += len(items)
                if items and items[-1].offset + 1 >= end[tp.partition]:
                    remaining.discard(tp)
        return records, time.perf_counter() - began
    finally:
        await consumer.stop()


class FeedReport(NamedTuple):
    """What a paced feed wrote: ticks, over how long, and how late its worst chunk was."""

    ticks: int
    seconds: float
    max_late_ms: float

    @property
    def rate(self) -> float:
        return self.ticks / self.seconds if self.seconds > 0 else 0.0


async def paced_feed(
    kafka: KafkaSettings,
    topic: str,
    tape: TickTape,
    *,
    chunks_per_s: float,
    duration_s: float,
    first_chunk: int = 0,
) -> FeedReport:
    """Write ``tape`` chunks to a long-running ``kcat -P`` at ``chunks_per_s`` for ``duration_s``.

    Deadline pacing: chunk ``k`` is due ``k / chunks_per_s`` after the start; a late
    loop catches up with back-to-back writes instead of drifting. Each chunk's ticks
    carry the wall-clock ms at which the chunk was handed to kcat, so latency is counted
    from the moment a tick entered the producer. ``linger.ms=1``: kcat sends within a
    millisecond (librdkafka's default waits 5).
    """
    process = await asyncio.create_subprocess_exec(
        *_kcat_command(kafka, topic, "-X", "linger.ms=1"),
        stdin=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None
    total = int(duration_s * chunks_per_s)
    max_late = 0.0
    began = time.monotonic()
    for k in range(total):
        due = began + k / chunks_per_s
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        else:
            max_late = max(max_late, -wait)
        process.stdin.write(tape.chunk(first_chunk + k, time.time_ns() // 1_000_000))
        await process.stdin.drain()
    written_s = time.monotonic() - began
    process.stdin.close()
    _, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"kcat failed feeding {topic}: {err.decode()[-500:]}")
    return FeedReport(total * tape.chunk_ticks, written_s, max_late * 1000)


class Latencies(NamedTuple):
    """Per-record latencies in ms of one measurement (numpy arrays, one entry per record)."""

    to_publish_ms: np.ndarray  # producer create time - tick time (events only)
    to_receive_ms: np.ndarray  # our receive time - tick time

    @staticmethod
    def summary(values: np.ndarray) -> dict[str, float | int]:
        if not len(values):
            return {"count": 0}
        p50, p99, p999 = np.percentile(values, [50, 99, 99.9])
        return {
            "count": len(values),
            "p50_ms": round(float(p50), 2),
            "p99_ms": round(float(p99), 2),
            "p999_ms": round(float(p999), 2),
            "max_ms": round(float(values.max()), 2),
        }


class Collector:
    """A bare consumer reading ``topic`` from its current end, in the background.

    ``events=True``: the monitor's margin events; latency of those a price tick
    triggered, from the event's ``trigger_ts``. ``events=False``: price
    ticks (every one decoded); latency from the tick's ``ts``. Records whose trigger
    time is before ``since_ms`` (warm-up) are not counted.
    """

    def __init__(self, kafka: KafkaSettings, topic: str, *, events: bool) -> None:
        self._kafka, self._topic, self._events = kafka, topic, events
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._trigger: list[np.ndarray] = []
        self._created: list[np.ndarray] = []
        self._received: list[np.ndarray] = []
        self._next: dict[int, int] = {}  # next offset to read, per partition
        self.types: dict[str, int] = {}
        self.sentinel_events = 0

    async def start(self) -> None:
        partitions = await _partitions(self._kafka, self._topic)
        consumer = _consumer(self._kafka)
        await consumer.start()
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:  # resolve the end now, not at the first fetch
            self._next[tp.partition] = await consumer.position(tp)
        self._consumer = consumer
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        consumer = self._consumer
        while True:
            batch = await consumer.getmany(timeout_ms=100, max_records=_POLL_MAX_RECORDS)
            received = now_ms()
            for tp in consumer.assignment():
                # The position, not the last record: transaction markers take offsets too.
                self._next[tp.partition] = await consumer.position(tp)
            for items in batch.values():
                if self._events:
                    self._take_events(items, received)
                else:
                    ts = np.fromiter(
                        (_decode_tick(r.value).ts for r in items), np.float64, len(items)
                    )
                    self._trigger.append(ts)
                    self._received.append(np.full(len(items), received))

    def _take_events(self, items: list[Any], received: float) -> None:
        trigger, created = [], []
        for record in items:
            event = _decode_event(record.value)
            self.types[event.type] = self.types.get(event.type, 0) + 1
            if event.account.startswith(SENTINEL_PREFIX):
                self.sentinel_events += 1
            if event.trigger == "price":
                trigger.append(event.trigger_ts)
                created.append(record.timestamp)
        self._trigger.append(np.asarray(trigger, np.float64))
        self._created.append(np.asarray(created, np.float64))
        self._received.append(np.full(len(trigger), received))

    async def until_read(self, ends: dict[int, int], timeout_s: float) -> None:
        """Wait until every partition has been read up to ``ends`` (or fail at the deadline)."""
        deadline = time.monotonic() + timeout_s
        while any(self._next.get(p, 0) < end for p, end in ends.items()):
            if self._task is not None and self._task.done():
                self._task.result()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self._topic} not read up to {ends} in {timeout_s:.0f}s")
            await asyncio.sleep(0.02)

    async def stop(self, since_ms: float) -> Latencies:
        """Stop reading; the latencies of records triggered at or after ``since_ms``."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()
        trigger = np.concatenate(self._trigger) if self._trigger else np.empty(0)
        received = np.concatenate(self._received) if self._received else np.empty(0)
        keep = trigger >= since_ms
        if self._events:
            created = np.concatenate(self._created) if self._created else np.empty(0)
            return Latencies(created[keep] - trigger[keep], received[keep] - trigger[keep])
        return Latencies(np.empty(0), received[keep] - trigger[keep])
