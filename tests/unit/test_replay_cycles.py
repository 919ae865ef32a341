"""Cycle boundaries: what the service records per cycle, and how replay cuts its own."""

from __future__ import annotations

import msgspec
import pytest

from monitor.changelog import RestoredState, _fold, batch_ends, cycle_record
from monitor.replay._files import FileRecord
from monitor.replay._plan import own_steps, run_gaps
from monitor.schema import CycleInput, StateRecord
from streams import TopicPartition

pytestmark = pytest.mark.unit


def record(topic: str, partition: int, offset: int, ts: int = 0) -> FileRecord:
    return FileRecord(topic, partition, offset, ts, None, b"{}", (), ts)


def test_batch_ends_names_each_partitions_next_offset_in_batch_order() -> None:
    batch = [record("p", 3, o) for o in (7, 8, 11)] + [record("p", 0, o) for o in range(5)]
    batch += [record("p", 5, 40)]
    assert batch_ends(batch) == ((3, 12), (0, 5), (5, 41))
    assert batch_ends([]) == ()


def test_batch_ends_of_a_large_batch_equal_a_plain_scan() -> None:
    batch = [record("p", p, o) for p in (2, 0, 1) for o in range(0, 30_000, 3)]
    plain = tuple({r.partition: r.offset + 1 for r in batch}.items())
    assert batch_ends(batch) == plain


def test_a_cycle_record_is_a_changelog_record_restore_skips() -> None:
    cycle = CycleInput(
        run="abc", seq=4, phase="cycle", now_ms=1_000, prices=((0, 10),), ledger=((2, 3),)
    )
    out = cycle_record("state", cycle)
    assert out.key == b"cycle:abc"
    assert msgspec.json.decode(out.value or b"", type=StateRecord) == cycle
    restored = RestoredState()
    _fold(restored, [record("state", 0, 0)._replace(key=out.key, value=out.value)])
    assert restored == RestoredState()  # neither dropped nor mistaken for state


def test_run_gaps_counts_cycles_without_a_record() -> None:
    def cycles(*seqs: int) -> list[CycleInput]:
        return [CycleInput(run="r", seq=s, phase="cycle", now_ms=s) for s in seqs]

    assert run_gaps(cycles(0, 1, 2)) == 0
    assert run_gaps(cycles(3, 4)) == 3  # compaction left only the last ones
    assert run_gaps(cycles(0, 2)) == 1


def test_own_batching_merges_by_time_and_cuts_windows_and_full_batches() -> None:
    prices = [(ts, record("prices", 0, k, ts)) for k, ts in enumerate((0, 40, 120, 130, 260))]
    fills = [(ts, record("fills", 0, k, ts)) for k, ts in enumerate((50, 135))]
    owned = frozenset({TopicPartition("fills", 0)})
    steps = list(own_steps([prices, fills], "fills", owned, cycle_ms=100, max_records=3))
    assert steps[0].phase == "rebuild"
    assert steps[0].owned == owned
    cycles = [([r.ts for r in s.prices], [r.ts for r in s.ledger], s.now_ms) for s in steps[1:]]
    assert cycles == [
        ([0, 40], [50], 50),
        ([120, 130], [135], 135),
        ([260], [], 260),
    ]
