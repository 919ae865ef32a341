"""Snapshot chunks in the changelog: complete snapshots only, stale chunks tombstoned."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from monitor.changelog import RestoredState, _fold, snapshot_records
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
        realised=b"",
        leverage=b"",
        isolated_margin=b"",
        row_flags=b"",
        row_rank=b"",
        row_unit_order=b"",
        seen=[],
    )


def fold(*batches: list[OutboundRecord]) -> RestoredState:
    restored = RestoredState()
    for records in batches:
        _fold(restored, [Record(r.key, r.value) for r in records])
    return restored


TP = TopicPartition("fills", 2)


def test_a_shorter_snapshot_tombstones_the_chunks_the_longer_one_left() -> None:
    long = snapshot_records("s", [chunk(n, 3, 10, f"a{n}") for n in range(3)])
    short = snapshot_records("s", [chunk(0, 1, 20, "b")], previous_chunks=3)
    assert [r.value is None for r in short] == [False, True, True]
    snapshot = fold(long, short).snapshot(TP)
    assert snapshot is not None
    assert [(c.next_offset, c.accounts) for c in snapshot] == [(20, ["b"])]


def test_an_incomplete_snapshot_is_not_used() -> None:
    records = snapshot_records("s", [chunk(n, 3, 10, f"a{n}") for n in range(3)])
    assert fold(records[:2]).snapshot(TP) is None
    assert fold(records).snapshot(TP) is not None
    assert fold(records).snapshot(TopicPartition("fills", 0)) is None
