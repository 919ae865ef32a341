"""Cycle records (``monitor.cycle_log``): a cycle that writes nothing else holds its record
back; the next write carries the held records first, in order; none waits past HOLD_S."""

from __future__ import annotations

import msgspec
import pytest

from monitor import cycle_log
from monitor.cycle_log import HOLD_S, CycleLog
from monitor.schema import CycleInput
from streams import OutboundRecord

pytestmark = pytest.mark.unit


def seqs(records: list[OutboundRecord]) -> list[int]:
    return [msgspec.json.decode(r.value, type=CycleInput).seq for r in records]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [100.0]
    monkeypatch.setattr(cycle_log.time, "monotonic", lambda: now[0])
    return now


def test_alone_cycles_are_held_and_go_first_into_the_next_write(clock: list[float]) -> None:
    log = CycleLog("liqmon-state", enabled=True)
    for _ in range(3):
        assert log.hold(log.record("cycle", 1), alone=True) == []
        clock[0] += 0.1
    written = log.hold(log.record("cycle", 2), alone=False)
    assert seqs(written) == [0, 1, 2, 3]
    assert seqs(log.hold(log.record("cycle", 3), alone=False)) == [4]  # nothing held now


def test_a_held_record_waits_at_most_hold_s(clock: list[float]) -> None:
    log = CycleLog("liqmon-state", enabled=True)
    assert log.hold(log.record("cycle", 1), alone=True) == []
    clock[0] += HOLD_S / 2
    assert log.hold(log.record("cycle", 1), alone=True) == []
    clock[0] += HOLD_S / 2
    assert seqs(log.hold(log.record("cycle", 1), alone=True)) == [0, 1, 2]
    assert log.hold(log.record("cycle", 1), alone=True) == []  # a new wait starts
    assert seqs(log.flush()) == [3]
    assert log.flush() == []


def test_other_phases_carry_the_held_records(clock: list[float]) -> None:
    log = CycleLog("liqmon-state", enabled=True)
    assert log.hold(log.record("cycle", 1), alone=True) == []
    assert seqs(log.record("revoke", 2)) == [0, 1]


def test_nothing_is_recorded_when_disabled(clock: list[float]) -> None:
    log = CycleLog("liqmon-state", enabled=False)
    assert log.hold(log.record("cycle", 1), alone=True) == []
    assert log.hold(log.record("cycle", 1), alone=False) == []
    assert log.flush() == []
