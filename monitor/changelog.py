"""The ``liqmon-state`` changelog: per-account margin states and ledger checkpoints.

Each cycle that changes an account's state publishes a :class:`UnitStates` record
(key ``account:<id>``) with its events, and a :class:`LedgerCheckpoint` (key
``checkpoint:<topic>:<partition>``) for every ledger partition it consumed, before
the ledger offsets are committed. The price guard's accepted marks
(:class:`PriceReference`, key ``price:<symbol>``) and how far the prices were
screened (:class:`PricesScreened`) go there too, as does each underlying's EWMA volatility
and dynamic-margin scale (:class:`VolatilityState`, key ``volatility:<underlying>``), and
so do periodic snapshots of each
ledger partition's book (:class:`SnapshotChunk`, keys
``snapshot:<topic>:<partition>:<slot>:<n>``), decoded only for the partitions being
rebuilt. A snapshot is written over several cycles into one of two slots, so the other
slot's, complete, stays until the new one is; keys without a slot are snapshots from
before slots, read the same way. Each cycle's input boundaries
(:class:`CycleInput`, key ``cycle:<run>``) are there for ``liqmon replay`` and skipped
here without decoding. The topic is compacted, so reading it
whole at start-up gives the newest record of each key. A record that does not decode is
skipped, logged by the caller and counted (``RestoredState.dropped``): the monitor wrote
it, so a foreign one cannot be trusted.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from contextlib import aclosing
from typing import Any

import msgspec

from monitor.schema import (
    CycleInput,
    LedgerCheckpoint,
    PriceReference,
    PricesScreened,
    PriceTick,
    SnapshotChunk,
    StateRecord,
    UnitStates,
    VolatilityState,
)
from streams import (
    InboundRecord,
    OutboundRecord,
    TopicPartition,
    next_offsets,
    read_history,
    topic_partitions,
)
from streams.settings import KafkaSettings

__all__ = [
    "CYCLE_PREFIX",
    "LEGACY_SLOT",
    "SNAPSHOT_CHUNK_BYTES",
    "RestoredState",
    "SnapshotKeys",
    "batch_ends",
    "checkpoint_records",
    "cycle_record",
    "fold_changelog",
    "price_reference_records",
    "prices_screened_records",
    "read_changelog",
    "snapshot_key",
    "snapshot_nulls",
    "state_record",
    "volatility_records",
]

SNAPSHOT_CHUNK_BYTES = 800 * 1024
"""Largest encoded snapshot chunk; Kafka's default record limit is 1 MiB."""
_SNAPSHOT_PREFIX = b"snapshot:"
CYCLE_PREFIX = b"cycle:"

_encode = msgspec.json.Encoder().encode
_decode_state = msgspec.json.Decoder(StateRecord).decode
_decode_snapshot = msgspec.json.Decoder(SnapshotChunk).decode


LEGACY_SLOT = -1
"""The slot of snapshot keys written before slots (``snapshot:<topic>:<partition>:<n>``)."""


class SnapshotKeys(msgspec.Struct, kw_only=True):
    """The snapshot keys of one ledger partition the changelog holds: per slot, one
    past its highest chunk number; and the slot of the newest complete snapshot."""

    counts: dict[int, int] = msgspec.field(default_factory=dict)
    newest: int | None = None

    @property
    def next_slot(self) -> int:
        """The slot the next snapshot goes to: not the one holding the newest."""
        return 1 if self.newest == 0 else 0

    def stale(self, slot: int, chunks: int) -> list[tuple[int, int]]:
        """The (slot, chunk) keys left stale once a snapshot of ``chunks`` chunks is
        complete in ``slot``: every other slot's, and its own slot's beyond them."""
        return [
            (other, n)
            for other, count in sorted(self.counts.items())
            for n in range(chunks if other == slot else 0, count)
        ]


class RestoredState(msgspec.Struct, kw_only=True):
    """What the changelog says: unit states by account and the next offset per ledger partition."""

    states: dict[str, UnitStates] = msgspec.field(default_factory=dict)
    checkpoints: dict[TopicPartition, int] = msgspec.field(default_factory=dict)
    price_references: dict[str, PriceTick] = msgspec.field(default_factory=dict)
    prices_screened: dict[TopicPartition, int] = msgspec.field(default_factory=dict)
    volatility: dict[str, VolatilityState] = msgspec.field(default_factory=dict)
    dropped: int = 0
    dropped_example: str = ""
    # Raw snapshot chunks by (topic, partition), slot and chunk number, decoded on demand.
    snapshot_raw: dict[TopicPartition, dict[int, dict[int, bytes]]] = msgspec.field(
        default_factory=dict
    )
    # Where the read got to per partition (next offset), for a later read to go on from.
    read_to: dict[TopicPartition, int] = msgspec.field(default_factory=dict)

    def snapshot(self, tp: TopicPartition) -> list[SnapshotChunk] | None:
        """The newest complete snapshot of ``tp``, or None (never taken, or incomplete)."""
        found = self._newest(tp)
        return None if found is None else found[1]

    def snapshot_keys(self, tp: TopicPartition) -> SnapshotKeys:
        """Which snapshot keys of ``tp`` are held, and the slot of its newest snapshot."""
        slots = self.snapshot_raw.get(tp, {})
        found = self._newest(tp)
        return SnapshotKeys(
            counts={slot: max(raw) + 1 for slot, raw in slots.items() if raw},
            newest=None if found is None else found[0],
        )

    def _newest(self, tp: TopicPartition) -> tuple[int, list[SnapshotChunk]] | None:
        """The slot and chunks of the complete snapshot of ``tp`` with the highest offset."""
        best: tuple[int, list[SnapshotChunk]] | None = None
        for slot, raw in sorted(self.snapshot_raw.get(tp, {}).items()):
            chunks = _complete(raw)
            if chunks is not None and (
                best is None or chunks[0].next_offset > best[1][0].next_offset
            ):
                best = (slot, chunks)
        return best


def _complete(raw: dict[int, bytes]) -> list[SnapshotChunk] | None:
    """The chunks of the newest snapshot in one slot if all of them are there."""
    if not raw:
        return None
    try:
        chunks = [_decode_snapshot(value) for _, value in sorted(raw.items())]
    except msgspec.DecodeError:
        return None
    newest = max(chunk.next_offset for chunk in chunks)
    current = [chunk for chunk in chunks if chunk.next_offset == newest]
    expected = current[0].chunks
    if sorted(chunk.chunk for chunk in current) != list(range(expected)):
        return None
    return current


def state_record(topic: str, record: UnitStates) -> OutboundRecord:
    """The changelog record of one account's unit states and transition counts."""
    return OutboundRecord(topic, f"account:{record.account}".encode(), _encode(record))


def checkpoint_records(topic: str, offsets: Mapping[TopicPartition, int]) -> list[OutboundRecord]:
    """One checkpoint record per consumed ledger partition (``offsets``: next offset)."""
    return [
        OutboundRecord(
            topic,
            f"checkpoint:{tp.topic}:{tp.partition}".encode(),
            _encode(LedgerCheckpoint(topic=tp.topic, partition=tp.partition, next_offset=offset)),
        )
        for tp, offset in offsets.items()
    ]


def cycle_record(topic: str, cycle: CycleInput) -> OutboundRecord:
    """The changelog record of one cycle's input boundaries (key ``cycle:<run>``)."""
    return OutboundRecord(topic, CYCLE_PREFIX + cycle.run.encode(), _encode(cycle))


def batch_ends(records: Sequence[InboundRecord]) -> tuple[tuple[int, int], ...]:
    """``(partition, next offset)`` of each partition in ``records``, in their order.

    ``records`` come as a poll hands them out: each partition's records in one run, in
    offset order. Each run's end is found by bisection, so a batch of 200,000 records
    costs a few dozen record reads, not one per record.
    """
    ends: list[tuple[int, int]] = []
    start, size = 0, len(records)
    while start < size:
        partition = records[start].partition

        def elsewhere(record: InboundRecord, p: int = partition) -> bool:
            return record.partition != p

        stop = bisect.bisect_left(records, True, lo=start, key=elsewhere)
        ends.append((partition, records[stop - 1].offset + 1))
        start = stop
    return tuple(ends)


def price_reference_records(topic: str, ticks: Iterable[PriceTick]) -> list[OutboundRecord]:
    """The changelog records of the price guard's accepted ``ticks``."""
    return [
        OutboundRecord(
            topic,
            f"price:{tick.symbol}".encode(),
            _encode(PriceReference(symbol=tick.symbol, mark_price=tick.mark_price, ts=tick.ts)),
        )
        for tick in ticks
    ]


def prices_screened_records(
    topic: str, offsets: Mapping[TopicPartition, int]
) -> list[OutboundRecord]:
    """How far each prices partition has been screened (``offsets``: next offset)."""
    return [
        OutboundRecord(
            topic,
            f"prices-screened:{tp.topic}:{tp.partition}".encode(),
            _encode(PricesScreened(topic=tp.topic, partition=tp.partition, next_offset=offset)),
        )
        for tp, offset in offsets.items()
    ]


def volatility_records(topic: str, states: Iterable[VolatilityState]) -> list[OutboundRecord]:
    """The changelog records of underlyings' volatility and dynamic-margin states."""
    return [
        OutboundRecord(topic, f"volatility:{state.underlying}".encode(), _encode(state))
        for state in states
    ]


def snapshot_key(tp: TopicPartition, slot: int, chunk: int) -> bytes:
    """The changelog key of chunk ``chunk`` of ``tp``'s snapshot in ``slot``."""
    if slot == LEGACY_SLOT:
        return f"snapshot:{tp.topic}:{tp.partition}:{chunk}".encode()
    return f"snapshot:{tp.topic}:{tp.partition}:{slot}:{chunk}".encode()


def snapshot_nulls(
    topic: str, tp: TopicPartition, keys: SnapshotKeys, slot: int, chunks: int
) -> list[OutboundRecord]:
    """Null values for the snapshot keys of ``tp`` (held as ``keys`` says) left stale once
    a snapshot of ``chunks`` chunks is complete in ``slot``."""
    return [
        OutboundRecord(topic, snapshot_key(tp, stale, n), None)
        for stale, n in keys.stale(slot, chunks)
    ]


async def read_changelog(
    kafka: KafkaSettings, topic: str, since: RestoredState | None = None, **options: Any
) -> RestoredState:
    """Read the whole changelog; the newest record of each key wins. Undecodable records
    are skipped and counted in ``dropped``.

    With ``since`` (an earlier read of the same topic), only the records after it are read
    and folded into it: the same result as reading everything again, for the price of
    what was written meanwhile. ``options`` go to the reading consumer (fetch sizes).
    """
    restored = RestoredState() if since is None else since
    partitions = await topic_partitions(kafka, topic)
    until = dict.fromkeys(partitions, 2**62)  # capped at each partition's end
    start = {tp: restored.read_to.get(tp, 0) for tp in partitions} if since else None
    async with aclosing(read_history(kafka, until, start=start, **options)) as batches:
        async for batch in batches:
            _fold(restored, batch)
            restored.read_to.update(next_offsets(batch))
    return restored


def fold_changelog(records: Iterable[InboundRecord]) -> RestoredState:
    """What ``records`` (changelog records in log order) say, as :func:`read_changelog`
    folds the whole topic: for ``liqmon replay``, the changelog as of a past moment."""
    restored = RestoredState()
    _fold(restored, records)
    return restored


def _fold(restored: RestoredState, records: Iterable[InboundRecord]) -> None:
    for record in records:
        key = record.key or b""
        if key.startswith(_SNAPSHOT_PREFIX):
            _fold_snapshot(restored, key, record.value)
            continue
        if key.startswith(CYCLE_PREFIX):  # for liqmon replay only
            continue
        if record.value is None:
            continue
        try:
            item = _decode_state(record.value)
        except msgspec.DecodeError as exc:
            restored.dropped += 1
            if not restored.dropped_example:
                where = f"{record.topic}[{record.partition}]@{record.offset}"
                restored.dropped_example = f"{where}: {exc}"
            continue
        if isinstance(item, UnitStates):
            restored.states[item.account] = item
        elif isinstance(item, LedgerCheckpoint):
            tp = TopicPartition(item.topic, item.partition)
            restored.checkpoints[tp] = item.next_offset
        elif isinstance(item, PriceReference):
            restored.price_references[item.symbol] = PriceTick(
                symbol=item.symbol, mark_price=item.mark_price, ts=item.ts
            )
        elif isinstance(item, PricesScreened):
            tp = TopicPartition(item.topic, item.partition)
            restored.prices_screened[tp] = item.next_offset
        elif isinstance(item, VolatilityState):
            restored.volatility[item.underlying] = item


def _fold_snapshot(restored: RestoredState, key: bytes, value: bytes | None) -> None:
    """Keep the newest value of a snapshot chunk key (``snapshot:<topic>:<partition>:
    <slot>:<n>``, or ``snapshot:<topic>:<partition>:<n>`` from before slots): topic
    names have no colons."""
    parts = key[len(_SNAPSHOT_PREFIX) :].decode(errors="replace").split(":")
    try:
        if len(parts) == 3:
            topic, partition, slot, chunk = parts[0], parts[1], LEGACY_SLOT, parts[2]
        elif len(parts) == 4:
            topic, partition, slot, chunk = parts[0], parts[1], int(parts[2]), parts[3]
        else:
            raise ValueError(key)
        tp = TopicPartition(topic, int(partition))
        number = int(chunk)
    except ValueError:
        restored.dropped += 1
        return
    chunks = restored.snapshot_raw.setdefault(tp, {}).setdefault(slot, {})
    if value is None:
        chunks.pop(number, None)
    else:
        chunks[number] = value
