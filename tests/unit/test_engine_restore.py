"""A rebuilt engine resumes states and transition numbering from the changelog record."""

from __future__ import annotations

import pytest

from monitor.engine import Engine, judge_all, restore_states, unit_record
from monitor.schema import Fill, Instrument, PriceTick, Tier, TieredMargin, Transfer

pytestmark = pytest.mark.unit

BTC = Instrument(
    symbol="BTCUSDT",
    kind="linear",
    quote="USDT",
    base="BTC",
    margin=TieredMargin(tiers=(Tier(floor=0, cap=1e12, mmr=0.005, imr=0.01),)),
)
LEDGER = [
    Transfer(transfer_id="t", account="a", asset="USDT", amount=1_000.0, ts=0),
    Fill(fill_id="f", account="a", symbol="BTCUSDT", side="buy", qty=1.0, price=30_000.0, ts=0),
]


def tick(price: float, ts: int) -> PriceTick:
    return PriceTick(symbol="BTCUSDT", mark_price=price, ts=ts)


def test_a_restored_unit_goes_on_numbering_its_transitions_with_the_same_ids() -> None:
    live = Engine([BTC])
    live.apply(LEDGER, [tick(30_000.0, 1)], 1)
    (call,) = live.apply([], [tick(29_250.0, 2)], 2)
    record = unit_record(live, "a", 2)
    assert (record.units, record.transitions) == ({"": "margin_call"}, {"": 1})
    (liquidation,) = live.apply([], [tick(29_100.0, 3)], 3)

    rebuilt = Engine([BTC])
    rebuilt.apply(LEDGER, [tick(29_250.0, 2)], 10)
    restore_states(rebuilt, {"a": record})
    assert judge_all(rebuilt, 10) == []  # nothing the last run did not publish
    (again,) = rebuilt.apply([], [tick(29_050.0, 11)], 11)
    assert (call.sequence, liquidation.sequence, again.sequence) == (1, 2, 2)
    assert again.event_id == liquidation.event_id
    assert not again.collapsed


def test_levels_passed_while_down_come_out_as_one_collapsed_event() -> None:
    live = Engine([BTC])
    live.apply(LEDGER, [tick(30_000.0, 1)], 1)
    record = unit_record(live, "a", 1)
    rebuilt = Engine([BTC])
    rebuilt.apply(LEDGER, [tick(29_100.0, 5)], 10)  # margin call and liquidation passed
    restore_states(rebuilt, {"a": record})
    (event,) = judge_all(rebuilt, 10)
    assert (event.previous_state, event.state, event.collapsed) == ("healthy", "liquidation", True)
    assert event.sequence == 1
