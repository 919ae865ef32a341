"""An account with thousands of positions still gets an event that fits a Kafka record."""

from __future__ import annotations

import msgspec
import pytest

from monitor.engine import MAX_EVENT_BYTES, fit_positions
from monitor.schema import MarginEvent, PositionRisk

pytestmark = pytest.mark.unit

_encode = msgspec.json.Encoder().encode


def _position(n: int) -> PositionRisk:
    return PositionRisk(
        symbol=f"SYM{n:05d}-PERPETUAL",
        qty=1.0 + n,
        entry_price=100.0 + n,
        mark_price=101.0 + n,
        notional=1000.0 + n,
        unrealized_pnl=-1.0 * n,
        initial_margin=2.0 * n,
        maintenance_margin=float(n),
        liquidation_price=50.0 + n,
        bankruptcy_price=40.0 + n,
    )


def _event(positions: int) -> MarginEvent:
    return MarginEvent(
        event_id="e",
        type="liquidation",
        account="big",
        state="liquidation",
        previous_state="margin_call",
        equity=1.0,
        initial_margin=2.0,
        maintenance_margin=3.0,
        margin_ratio=3.0,
        trigger="price",
        trigger_ts=1,
        detected_ts=2,
        positions=tuple(_position(n) for n in range(positions)),
    )


def test_a_huge_event_keeps_the_positions_with_the_largest_maintenance_margin() -> None:
    event = _event(10_000)
    assert len(_encode(event)) > MAX_EVENT_BYTES
    fitted = fit_positions(event, MAX_EVENT_BYTES, _encode)
    assert len(_encode(fitted)) <= MAX_EVENT_BYTES
    kept = len(fitted.positions)
    assert kept > 1000
    assert fitted.positions_omitted == 10_000 - kept
    assert [p.maintenance_margin for p in fitted.positions] == [
        float(n) for n in range(9_999, 9_999 - kept, -1)
    ]
    assert (fitted.equity, fitted.maintenance_margin) == (event.equity, event.maintenance_margin)


def test_an_event_that_cannot_fit_any_position_keeps_none() -> None:
    fitted = fit_positions(_event(3), 100, _encode)
    assert (fitted.positions, fitted.positions_omitted) == ((), 3)
