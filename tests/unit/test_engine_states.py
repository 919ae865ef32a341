"""The per-unit state machine: thresholds, hysteresis, jumps, clearing, event identity."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.engine import Engine, EngineConfig
from monitor.schema import Fill, Instrument, MarginEvent, PriceTick, Tier, TieredMargin, Transfer
from monitor.states import (
    BANKRUPT,
    HEALTHY,
    LIQUIDATION,
    MARGIN_CALL,
    at_or_below,
    classify,
    slack,
)

pytestmark = pytest.mark.unit

# 1 BTC long from 30000 with 1000 USDT: MM = 0.5% of notional, IM = 1%.
# Liquidation where 1000 + (p - 30000) = 0.005 p  ->  p = 29000 / 0.995 = 29145.73
BTC = Instrument(
    symbol="BTCUSDT",
    kind="linear",
    quote="USDT",
    base="BTC",
    margin=TieredMargin(tiers=(Tier(floor=0, cap=1e12, mmr=0.005, imr=0.01),)),
)
LIQUIDATION_PRICE = 29_000.0 / 0.995


def opened(config: EngineConfig | None = None, collateral: float = 1_000.0) -> Engine:
    engine = Engine([BTC], config)
    engine.apply(
        [
            Transfer(transfer_id="t", account="a", asset="USDT", amount=collateral, ts=0),
            Fill(
                fill_id="f",
                account="a",
                symbol="BTCUSDT",
                side="buy",
                qty=1.0,
                price=30_000.0,
                ts=0,
            ),
        ],
        [PriceTick(symbol="BTCUSDT", mark_price=30_000.0, ts=0)],
        0,
    )
    return engine


def move(engine: Engine, price: float, ts: int) -> list[MarginEvent]:
    return engine.apply([], [PriceTick(symbol="BTCUSDT", mark_price=price, ts=ts)], ts + 1)


def test_a_price_hovering_at_the_liquidation_threshold_emits_one_event() -> None:
    engine = opened()
    assert [e.type for e in move(engine, LIQUIDATION_PRICE + 50.0, 1)] == ["margin_call"]
    events = []
    for ts, offset in enumerate([-1.0, 1.0, -0.5, 2.0, -3.0, 0.5, 5.0, -5.0, 1.0], start=2):
        events += move(engine, LIQUIDATION_PRICE + offset, ts)
    assert [e.type for e in events] == ["liquidation"]


def test_leaving_a_state_needs_the_figures_to_clear_the_band() -> None:
    engine = opened(EngineConfig(hysteresis=0.05))
    move(engine, LIQUIDATION_PRICE - 10.0, 1)
    # Equity must exceed 1.05 x MM (about 7.3 USDT above MM) before liquidation clears.
    assert move(engine, LIQUIDATION_PRICE + 5.0, 2) == []
    assert [e.type for e in move(engine, LIQUIDATION_PRICE + 10.0, 3)] == ["liquidation_cleared"]


def test_without_a_band_the_state_follows_the_threshold_exactly() -> None:
    engine = opened(EngineConfig(hysteresis=0.0))
    move(engine, LIQUIDATION_PRICE - 10.0, 1)
    assert [e.state for e in move(engine, LIQUIDATION_PRICE + 1.0, 2)] == ["margin_call"]


def test_a_crash_jumps_several_levels_in_one_event() -> None:
    engine = opened()
    events = move(engine, 28_000.0, 1)
    assert [(e.type, e.previous_state, e.state) for e in events] == [
        ("bankruptcy", "healthy", "bankrupt")
    ]
    assert events[0].equity == pytest.approx(-1_000.0)
    assert events[0].shortfall == pytest.approx(1_000.0 + 140.0)


def test_a_recovery_jumps_back_in_one_clearing_event() -> None:
    engine = opened()
    move(engine, 28_000.0, 1)
    events = move(engine, 31_000.0, 2)
    assert [(e.type, e.previous_state, e.state) for e in events] == [
        ("bankruptcy_cleared", "bankrupt", "healthy")
    ]


def test_margin_call_when_the_ratio_reaches_the_warning_level_above_initial_margin() -> None:
    tight = Instrument(
        symbol="BTCUSDT",
        kind="linear",
        quote="USDT",
        base="BTC",
        margin=TieredMargin(tiers=(Tier(floor=0, cap=1e12, mmr=0.01, imr=0.011),)),
    )
    engine = Engine([tight], EngineConfig(margin_call_ratio=0.8))
    engine.apply(
        [
            Transfer(transfer_id="t", account="a", asset="USDT", amount=360.0, ts=0),
            Fill(
                fill_id="f",
                account="a",
                symbol="BTCUSDT",
                side="buy",
                qty=1.0,
                price=30_000.0,
                ts=0,
            ),
        ],
        [],
        0,
    )
    # equity 360 > IM 330, but MM 300 / 360 = 0.83 >= 0.8
    assert engine.account_risk("a").state == "margin_call"


def test_a_withdrawal_that_breaches_is_a_ledger_triggered_event() -> None:
    engine = opened()
    events = engine.apply(
        [Transfer(transfer_id="w1", account="a", asset="USDT", amount=-900.0, ts=77)], [], 99
    )
    assert [(e.type, e.trigger, e.trigger_ts, e.detected_ts) for e in events] == [
        ("liquidation", "ledger", 77, 99)
    ]


def test_an_event_carries_the_numbers_that_justify_it() -> None:
    engine = opened()
    (event,) = move(engine, 29_100.0, 1)
    assert event.account == "a"
    assert event.equity == pytest.approx(100.0)
    assert event.maintenance_margin == pytest.approx(145.5)
    assert event.initial_margin == pytest.approx(291.0)
    assert event.margin_ratio == pytest.approx(1.455)
    assert event.trigger == "price"
    assert event.positions[0].liquidation_price == pytest.approx(LIQUIDATION_PRICE)
    assert event.positions[0].bankruptcy_price == pytest.approx(29_000.0)
    assert event.symbol is None


def test_a_wallet_in_debt_without_positions_is_bankrupt_until_topped_up() -> None:
    engine = Engine([BTC])
    events = engine.apply(
        [Transfer(transfer_id="w", account="a", asset="USDT", amount=-5.0, ts=0)], [], 0
    )
    assert [e.type for e in events] == ["bankruptcy"]
    events = engine.apply(
        [Transfer(transfer_id="d", account="a", asset="USDT", amount=5.0, ts=1)], [], 1
    )
    assert [e.type for e in events] == ["bankruptcy_cleared"]


def test_an_empty_account_is_healthy() -> None:
    engine = Engine([BTC])
    engine.apply([Transfer(transfer_id="d", account="a", asset="USDT", amount=0.0, ts=0)], [], 0)
    assert engine.state_counts()["healthy"] == 1


def test_the_same_inputs_give_the_same_events_and_ids() -> None:
    def run() -> list[MarginEvent]:
        engine = opened()
        return [
            e
            for ts, p in enumerate([29_200.0, 29_100.0, 28_000.0, 31_000.0], 1)
            for e in move(engine, p, ts)
        ]

    first, second = run(), run()
    assert first == second
    assert len({e.event_id for e in first}) == len(first) == 4


def test_the_same_transition_keeps_its_id_whatever_tick_triggered_it() -> None:
    a, b = opened(), opened()
    (ea,) = move(a, 29_100.0, 1)
    (eb,) = move(b, 29_120.0, 2)
    assert (ea.type, ea.sequence) == (eb.type, eb.sequence) == (ea.type, 1)
    assert ea.event_id == eb.event_id


def test_each_transition_of_a_unit_is_numbered_in_sequence() -> None:
    engine = opened()
    (first,) = move(engine, 29_100.0, 1)
    (second,) = move(engine, 31_000.0, 2)  # recovers
    (third,) = move(engine, 29_100.0, 3)
    assert [e.sequence for e in (first, second, third)] == [1, 2, 3]
    assert first.type == third.type
    assert first.event_id != third.event_id


def test_comparisons_allow_rounding_relative_to_the_scale() -> None:
    value, threshold, scale = np.array([100.0 + 1e-8]), np.array([100.0]), np.array([1e3])
    assert at_or_below(value, threshold, slack(scale)).all()
    assert not at_or_below(value + 1e-5, threshold, slack(scale)).any()


@pytest.mark.parametrize(
    ("previous", "equity", "expected"),
    [
        (HEALTHY, 1_000.0, HEALTHY),
        (HEALTHY, 150.0, MARGIN_CALL),
        (HEALTHY, 100.0, LIQUIDATION),
        (HEALTHY, 0.0, BANKRUPT),
        (LIQUIDATION, 104.0, LIQUIDATION),
        (LIQUIDATION, 106.0, MARGIN_CALL),
        (BANKRUPT, 4.0, BANKRUPT),
        (BANKRUPT, 6.0, LIQUIDATION),
        (MARGIN_CALL, 209.0, MARGIN_CALL),
        (MARGIN_CALL, 211.0, HEALTHY),
    ],
)
def test_classify_enters_and_leaves_levels_with_the_band(
    previous: int, equity: float, expected: int
) -> None:
    state = classify(
        np.array([previous], dtype=np.int8),
        np.array([equity]),
        np.array([200.0]),
        np.array([100.0]),
        np.array([1e3]),
        np.array([1]),
        margin_call_ratio=0.5 - 1e-12,
        band=0.05,
    )
    assert state.tolist() == [expected]
