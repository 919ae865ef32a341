"""Recorded input and published output on Kafka: the topics' offset ranges, the cycle
records in ``liqmon-state``, lazy reading of partitions by offset, ``margin-events``."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from contextlib import aclosing

import msgspec
from aiokafka import AIOKafkaConsumer

from monitor.changelog import CYCLE_PREFIX, RestoredState, fold_changelog
from monitor.errors import InputError
from monitor.replay._pipeline import Published
from monitor.schema import CycleInput, MarginEvent, MarginParameters
from streams import InboundRecord, TopicPartition, read_history, settled_ends, topic_partitions
from streams.settings import KafkaSettings, client_kwargs

__all__ = [
    "Feed",
    "OnWait",
    "RecordedState",
    "check_offset",
    "offset_ranges",
    "read_all",
    "read_published",
    "read_state",
]

_decode_cycle = msgspec.json.Decoder(CycleInput).decode
_decode_event = msgspec.json.Decoder(MarginEvent).decode
_decode_parameters = msgspec.json.Decoder(MarginParameters).decode
# Told once, in one line, when reading waits for a transaction left open (a monitor
# killed mid-cycle) to end: what is read is what was written before, committed, whole.
OnWait = Callable[[str], None]
_SNAPSHOT_PREFIX = b"snapshot:"


async def offset_ranges(
    kafka: KafkaSettings, topics: Iterable[str], on_wait: OnWait | None = None
) -> dict[TopicPartition, tuple[int, int]]:
    """``(first offset, end offset)`` of every partition of ``topics`` (StreamsError if
    a topic does not exist), the end past every transaction open now (see
    :func:`streams.settled_ends`)."""
    partitions = [tp for topic in topics for tp in await topic_partitions(kafka, topic)]
    consumer = AIOKafkaConsumer(**client_kwargs(kafka), enable_auto_commit=False)
    await consumer.start()
    try:
        begins = await consumer.beginning_offsets(partitions)
    finally:
        await consumer.stop()
    ends = await settled_ends(kafka, partitions, on_wait=on_wait)
    return {tp: (begins[tp], ends[tp]) for tp in partitions}


def check_offset(
    ranges: Mapping[TopicPartition, tuple[int, int]], tp: TopicPartition, offset: int
) -> None:
    """InputError unless ``tp`` exists and ``offset`` lies within what it holds (the end
    offset itself included: "up to the end")."""
    if tp not in ranges:
        known = sorted({t.topic for t in ranges})
        raise InputError(
            f"{tp.topic}[{tp.partition}] is not a partition of the replayed topics "
            f"({', '.join(known)}); check the topic name and partition number"
        )
    first, end = ranges[tp]
    if not first <= offset <= end:
        raise InputError(
            f"offset {offset} of {tp.topic}[{tp.partition}] is out of range: the partition "
            f"holds offsets {first} to {end - 1}"
            + (" (records before were deleted by retention)" if first else "")
        )


class RecordedState:
    """``liqmon-state`` as read: each run's cycle records (by run, in ``seq`` order, runs
    in the order they began), and the other records but snapshots, to tell what the
    changelog said at a past moment (by record time)."""

    def __init__(self, runs: dict[str, list[CycleInput]], records: list[InboundRecord]) -> None:
        self.runs = runs
        self._records = records

    def at(self, ts_ms: int) -> RestoredState:
        """The changelog as a monitor reading it at ``ts_ms`` found it (what compaction
        left of it: a version compacted away since is not there)."""
        return fold_changelog(r for r in self._records if r.timestamp < ts_ms)


async def read_state(
    kafka: KafkaSettings, state_topic: str, on_wait: OnWait | None = None
) -> RecordedState:
    """Read ``state_topic`` whole (every transaction open when called ended first: a
    killed run's records after its open one are read too); undecodable cycle records
    are skipped."""
    runs: dict[str, list[CycleInput]] = {}
    kept: list[InboundRecord] = []
    partitions = await topic_partitions(kafka, state_topic)
    ends = await settled_ends(kafka, partitions, on_wait=on_wait)
    async with aclosing(read_history(kafka, ends)) as batches:
        async for batch in batches:
            for record in batch:
                key = record.key or b""
                if key.startswith(_SNAPSHOT_PREFIX):
                    continue
                if not key.startswith(CYCLE_PREFIX):
                    kept.append(record)
                    continue
                try:
                    cycle = _decode_cycle(record.value or b"")
                except msgspec.DecodeError:
                    continue
                runs.setdefault(cycle.run, []).append(cycle)
    firsts = {run: min(c.now_ms for c in cycles) for run, cycles in runs.items()}
    ordered = {
        run: sorted(runs[run], key=lambda c: c.seq) for run in sorted(runs, key=firsts.__getitem__)
    }
    return RecordedState(ordered, kept)


async def read_all(
    kafka: KafkaSettings, until: Mapping[TopicPartition, int]
) -> dict[TopicPartition, list[InboundRecord]]:
    """Every record of each partition from its beginning up to ``until[tp]``, by partition."""
    found: dict[TopicPartition, list[InboundRecord]] = {tp: [] for tp in until}
    async with aclosing(read_history(kafka, until)) as batches:
        async for batch in batches:
            for record in batch:
                found[TopicPartition(record.topic, record.partition)].append(record)
    return found


async def read_published(
    kafka: KafkaSettings, topic: str, on_wait: OnWait | None = None
) -> list[Published]:
    """What ``topic`` (``margin-events``) holds now, committed records only, in order
    per partition (every transaction open when called ended first). A record that does
    not decode is an InputError naming it."""
    partitions = await topic_partitions(kafka, topic)
    found: list[Published] = []
    ends = await settled_ends(kafka, partitions, on_wait=on_wait)
    async with aclosing(read_history(kafka, ends)) as batches:
        async for batch in batches:
            for record in batch:
                found.append(decode_published(record))
    return found


def decode_published(record: InboundRecord) -> Published:
    kind = next((v for k, v in record.headers if k == "type"), b"")
    try:
        if kind == b"margin_parameters":
            return _decode_parameters(record.value or b"")
        return _decode_event(record.value or b"")
    except msgspec.DecodeError as exc:
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        raise InputError(f"{where} is not a margin event ({exc})") from None


class Feed:
    """Records of many partitions read once, in order, handed out by offset range."""

    def __init__(self, kafka: KafkaSettings, until: Mapping[TopicPartition, int]) -> None:
        self._history: AsyncGenerator[list[InboundRecord], None] = read_history(kafka, until)
        self._buffers: dict[TopicPartition, deque[InboundRecord]] = {}
        self._done = False

    async def take(self, tp: TopicPartition, end: int) -> list[InboundRecord]:
        """The records of ``tp`` not handed out yet with an offset below ``end``."""
        buffer = self._buffers.setdefault(tp, deque())
        while not self._done and (not buffer or buffer[-1].offset < end - 1):
            try:
                batch = await anext(self._history)
            except StopAsyncIteration:
                self._done = True
                break
            for record in batch:
                key = TopicPartition(record.topic, record.partition)
                self._buffers.setdefault(key, deque()).append(record)
        taken = []
        while buffer and buffer[0].offset < end:
            taken.append(buffer.popleft())
        return taken

    async def close(self) -> None:
        await self._history.aclose()
