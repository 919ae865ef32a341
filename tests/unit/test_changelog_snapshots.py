"""Snapshot chunks in the changelog: complete snapshots only, two slots, stale chunks
nulled."""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec
import numpy as np
import pytest

from monitor.changelog import (
    LEGACY_SLOT,
    RestoredState,
    SnapshotKeys,
    _fold,
    snapshot_key,
    snapshot_nulls,
)
from monitor.schema import SnapshotChunk
from streams import OutboundRecord, TopicPartition
from streams.records import Headers

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes | None
    topic: str = "liqmon-state"
    partition: int = 0
    offset: int = 0
    timestamp: int = 0
    headers: Headers = field(default_factory=tuple)


def chunk(n: int, of: int, next_offset: int, account: str) -> SnapshotChunk:
    return SnapshotChunk(
        topic="fills",
        partition=2,
        next_offset=next_offset,
        chunk=n,
        chunks=of,
        ts=0,
        ledger_clock=0,
        assets=("USDT",),
        symbols=(),
        accounts=[account],
        modes=b"\x00",
        balances=np.array([1.0]).tobytes(),
        row_account=b"",
        row_symbol=b"",
        qty=b"",
        entry=b"",
        leverage=b"",
        isolated_margin=b"",
        row_flags=b"",
        row_rank=b"",
        row_unit_order=b"",
        seen=[],
    )


def snapshot_records(
    topic: str, chunks: list[SnapshotChunk], slot: int, keys: SnapshotKeys | None = None
) -> list[OutboundRecord]:
    """A whole snapshot's records as the writer makes them, in one go: its chunks in
    ``slot``, then the nulls for the keys it leaves stale."""
    tp = TopicPartition(chunks[0].topic, chunks[0].partition)
    records = [
        OutboundRecord(topic, snapshot_key(tp, slot, c.chunk), msgspec.json.encode(c))
        for c in chunks
    ]
    return records + snapshot_nulls(topic, tp, keys or SnapshotKeys(), slot, len(chunks))


def fold(*batches: list[OutboundRecord]) -> RestoredState:
    restored = RestoredState()
    for records in batches:
        _fold(restored, [Record(r.key, r.value) for r in records])
    return restored


TP = TopicPartition("fills", 2)


def test_a_finished_snapshot_nulls_the_other_slot_and_its_own_slots_extra_chunks() -> None:
    first = snapshot_records("s", [chunk(n, 3, 10, f"a{n}") for n in range(3)], slot=0)
    keys = fold(first).snapshot_keys(TP)
    assert (keys.counts, keys.newest, keys.next_slot) == ({0: 3}, 0, 1)
    second = snapshot_records("s", [chunk(0, 1, 20, "b")], slot=1, keys=keys)
    assert [(r.key, r.value is None) for r in second] == [
        (b"snapshot:fills:2:1:0", False),
        (b"snapshot:fills:2:0:0", True),
        (b"snapshot:fills:2:0:1", True),
        (b"snapshot:fills:2:0:2", True),
    ]
    restored = fold(first, second)
    snapshot = restored.snapshot(TP)
    assert snapshot is not None
    assert [(c.next_offset, c.accounts) for c in snapshot] == [(20, ["b"])]
    assert restored.snapshot_keys(TP).counts == {1: 1}
    # Back to slot 0, shorter than what slot 0 once held: nothing of either is left over.
    third = snapshot_records("s", [chunk(0, 1, 30, "c")], slot=0, keys=restored.snapshot_keys(TP))
    restored = fold(first, second, third)
    assert restored.snapshot_keys(TP).counts == {0: 1}
    assert [c.accounts for c in restored.snapshot(TP) or []] == [["c"]]


def test_a_snapshot_cut_off_halfway_leaves_the_older_one_in_use() -> None:
    older = snapshot_records("s", [chunk(n, 2, 10, f"a{n}") for n in range(2)], slot=0)
    newer = snapshot_records(
        "s",
        [chunk(n, 3, 20, f"b{n}") for n in range(3)],
        slot=1,
        keys=fold(older).snapshot_keys(TP),
    )
    restored = fold(older, newer[:2])  # the writer stopped after two of three chunks
    snapshot = restored.snapshot(TP)
    assert snapshot is not None
    assert [c.next_offset for c in snapshot] == [10, 10]
    keys = restored.snapshot_keys(TP)
    assert (keys.counts, keys.newest, keys.next_slot) == ({0: 2, 1: 2}, 0, 1)
    # Written whole later, the newer one is used and the older one's keys are nulled.
    done = snapshot_records("s", [chunk(n, 3, 30, f"c{n}") for n in range(3)], slot=1, keys=keys)
    restored = fold(older, newer[:2], done)
    assert [c.next_offset for c in restored.snapshot(TP) or []] == [30, 30, 30]
    assert restored.snapshot_keys(TP).counts == {1: 3}


def test_an_incomplete_snapshot_is_not_used() -> None:
    records = snapshot_records("s", [chunk(n, 3, 10, f"a{n}") for n in range(3)], slot=0)
    assert fold(records[:2]).snapshot(TP) is None
    assert fold(records[:2]).snapshot_keys(TP).newest is None
    assert fold(records).snapshot(TP) is not None
    assert fold(records).snapshot(TopicPartition("fills", 0)) is None


def test_snapshots_written_before_slots_are_read_and_replaced() -> None:
    legacy = [
        OutboundRecord("s", f"snapshot:fills:2:{n}".encode(), msgspec.json.encode(c))
        for n, c in enumerate(chunk(n, 2, 10, f"a{n}") for n in range(2))
    ]
    restored = fold(legacy)
    assert [c.accounts for c in restored.snapshot(TP) or []] == [["a0"], ["a1"]]
    keys = restored.snapshot_keys(TP)
    assert (keys.counts, keys.newest, keys.next_slot) == ({LEGACY_SLOT: 2}, LEGACY_SLOT, 0)
    new = snapshot_records("s", [chunk(0, 1, 20, "b")], slot=0, keys=keys)
    assert [r.key for r in new if r.value is None] == [b"snapshot:fills:2:0", b"snapshot:fills:2:1"]
    restored = fold(legacy, new)
    assert restored.snapshot_keys(TP).counts == {0: 1}


def test_a_snapshot_key_of_another_shape_is_counted_as_dropped() -> None:
    restored = fold([OutboundRecord("s", b"snapshot:fills:2:x:y:0", b"{}")])
    assert restored.dropped == 1
    assert restored.snapshot(TP) is None
