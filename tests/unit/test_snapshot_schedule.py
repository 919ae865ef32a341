"""The snapshot schedule: whose turn it is, when a turn may begin, and what is said when
the turns cannot keep up (the writing itself: ``test_snapshot_writer``)."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from monitor.changelog import SnapshotKeys
from monitor.snapshots import Snapshots
from streams import TopicPartition
from tests.unit.test_snapshot_writer import OWNED, TP, Rig

pytestmark = pytest.mark.unit


class Turns:
    """A snapshot writer of a small book owning ``partitions`` partitions (the accounts
    all in the first), on a clock the test moves, with an interval of 1 s."""

    def __init__(self, partitions: int) -> None:
        self.now = 0.0
        self.rig = Rig(40)
        self.owned = frozenset(TopicPartition(TP.topic, p) for p in range(partitions))
        self.writer = Snapshots("liqmon-state", 1.0, self.rig.metrics, clock=lambda: self.now)
        self.writer.schedule(self.owned, {})

    def take(self, after_s: float) -> int | None:
        """Move the clock on by ``after_s`` and take a cycle's snapshot work: the
        partition whose snapshot that began (then written whole), or None."""
        self.now += after_s
        rig = self.rig
        self.writer.take(rig.engine, self.owned, rig.partitions, {TP: rig.offset}, 7)
        writing = self.writer._writing
        while self.writer._writing is not None:
            self.writer.take(rig.engine, self.owned, rig.partitions, {TP: rig.offset}, 7)
        return None if writing is None else writing.tp.partition


def test_a_due_snapshot_that_may_not_begin_waits_for_its_turn_to_be_taken_up() -> None:
    """The service holds a snapshot back while a stress runs (``may_begin``)."""
    rig = Rig(40)
    rig.until(lambda: rig.writer.due(OWNED))
    for _ in range(3):
        assert rig.take(may_begin=False) == []
        assert not rig.writer.copying(OWNED)  # a copy begins in the take that begins it
        assert rig.writer.due(OWNED)  # still its turn
    rig.take()
    assert rig.writer.copying(OWNED)

    def written_after_a_take() -> bool:
        rig.take(may_begin=False)  # a snapshot begun is written to its end
        return rig.written() == 1

    rig.until(written_after_a_take)


def test_a_revoked_partitions_snapshot_is_dropped() -> None:
    rig = Rig(50)
    rig.until(lambda: rig.writer.due(OWNED))
    assert rig.take() == []  # the copy
    assert rig.writer.due(OWNED)
    assert rig.take(frozenset()) == []
    assert rig.writer._writing is None
    assert rig.written() == 0


def test_the_partition_whose_turn_came_first_goes_first() -> None:
    """Snapshots slower than the interval leave every partition overdue at once: they
    then take turns, the longest waiting first, rather than in partition order (which let
    partitions 0 and 1 take every turn at a million accounts and restarts replay the
    others' whole ledger)."""
    turns = Turns(3)
    order = [turns.take(10.0) for _ in range(7)]  # every partition's turn has come by now
    assert order == [0, 1, 2, 0, 1, 2, 0]
    assert turns.rig.written() == 7
    # Each partition's newest snapshot and its book time (the cycle's clock, 7 ms here),
    # for as long as this instance owns the partition.
    gauge = turns.rig.metrics.registry.get_sample_value
    stamps = {p: gauge("liqmon_snapshot_timestamp_seconds", {"partition": p}) for p in "012"}
    assert stamps == {"0": 0.007, "1": 0.007, "2": 0.007}
    turns.writer.schedule(frozenset({TP}), {})
    stamps = {p: gauge("liqmon_snapshot_timestamp_seconds", {"partition": p}) for p in "012"}
    assert stamps == {"0": 0.007, "1": None, "2": None}


def test_turns_that_come_an_interval_late_are_said_once_an_interval() -> None:
    turns = Turns(2)
    warned, taken = [], []
    for step in (0.6, 0.6, 3.0, 0.1, 0.1, 3.0):
        with capture_logs() as logs:
            taken.append(turns.take(step))
        warned.append([e["partition"] for e in logs if e["event"] == "snapshots cannot keep up"])
    assert taken == [0, 1, 0, 1, None, 0]
    # The third turn is 2.6 s late: said. The fourth is 2.1 s late, within the interval
    # after that warning: not said. The fifth finds no turn due; the sixth, 2.2 s late
    # and past the quiet interval, is said again.
    assert warned == [[], [], [0], [], [], [0]]


def test_partitions_without_a_snapshot_are_counted_until_their_first_is_written() -> None:
    """``liqmon_snapshot_partitions_missing``: a restart would replay their whole ledger
    (``LiqmonSnapshotMissing``)."""
    turns = Turns(3)
    missing = turns.rig.metrics.snapshot_partitions_missing
    assert missing._value.get() == 3  # none in the changelog
    turns.take(0.4)
    assert missing._value.get() == 2
    turns.take(0.4)
    turns.take(0.4)
    assert missing._value.get() == 0
    # Reassigned: the changelog holds partition 0's complete snapshot (slot 1) and only
    # the chunks of an unfinished one of partition 1.
    other = TopicPartition(TP.topic, 1)
    keys = {TP: SnapshotKeys(counts={1: 2}, newest=1), other: SnapshotKeys(counts={0: 1})}
    turns.writer.schedule(turns.owned, keys)
    assert missing._value.get() == 2
    off = Snapshots("liqmon-state", 0.0, turns.rig.metrics)
    off.schedule(turns.owned, {})
    assert missing._value.get() == 0  # snapshots off: none is missing
