"""Liquidation events: the smallest reduction back to initial margin, liquidation prices."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.engine import Engine, kept_fraction
from monitor.schema import (
    Fill,
    Instrument,
    MarginEvent,
    MarginSettings,
    PriceTick,
    RateCurve,
    SizeScaledMargin,
    Tier,
    TieredMargin,
    Transfer,
)
from monitor.states import at_or_below, slack

pytestmark = pytest.mark.unit

BTC = Instrument(
    symbol="BTCUSDT",
    kind="linear",
    quote="USDT",
    base="BTC",
    margin=TieredMargin(
        tiers=(
            Tier(floor=0, cap=50_000, mmr=0.004, imr=0.008),
            Tier(floor=50_000, cap=250_000, mmr=0.005, imr=0.01),
            Tier(floor=250_000, cap=1e12, mmr=0.01, imr=0.02),
        )
    ),
)
ETH = Instrument(
    symbol="ETHUSDT",
    kind="linear",
    quote="USDT",
    base="ETH",
    margin=SizeScaledMargin(
        im=RateCurve(base=0.02, slope=0.00005), mm=RateCurve(base=0.01, slope=0.00005)
    ),
)


def trade(fid: str, symbol: str, side: str, qty: float, price: float) -> Fill:
    return Fill(fill_id=fid, account="a", symbol=symbol, side=side, qty=qty, price=price, ts=1)  # type: ignore[arg-type]


def tick(symbol: str, price: float, ts: int) -> PriceTick:
    return PriceTick(symbol=symbol, mark_price=price, ts=ts)


def crashed(
    collateral: float, positions: list[tuple[str, float, float, float]]
) -> tuple[Engine, MarginEvent]:
    """An account opened at entry prices, then every mark moved; returns its worst event."""
    engine = Engine([BTC, ETH])
    fills = [
        trade(f"o{k}", s, "buy" if q > 0 else "sell", abs(q), entry)
        for k, (s, q, entry, _) in enumerate(positions)
    ]
    engine.apply(
        [Transfer(transfer_id="t", account="a", asset="USDT", amount=collateral, ts=0), *fills],
        [],
        0,
    )
    events = engine.apply([], [tick(s, mark, 5) for s, _, _, mark in positions], 5)
    assert events, "the scenario should breach"
    return engine, events[-1]


def reduce(engine: Engine, event: MarginEvent, scale: float = 1.0) -> None:
    """Execute the event's reductions at the current marks (no fees)."""
    risk = {p.symbol: p for p in event.positions}
    engine.apply(
        [
            trade(
                f"r{k}",
                r.symbol,
                "sell" if risk[r.symbol].qty > 0 else "buy",
                r.qty * scale,
                risk[r.symbol].mark_price,
            )
            for k, r in enumerate(event.reductions)
        ],
        [],
        6,
    )


def restored(engine: Engine) -> bool:
    risk = engine.account_risk("a")
    scale = np.array([abs(risk.equity) + risk.initial_margin + risk.maintenance_margin])
    return bool(
        at_or_below(np.array([risk.initial_margin]), np.array([risk.equity]), slack(scale))[0]
    )


SCENARIOS = {
    "one tiered position": (500.0, [("BTCUSDT", 1.0, 30_000.0, 29_600.0)]),
    "one position crossing down a bracket": (2_000.0, [("BTCUSDT", 3.0, 30_000.0, 29_450.0)]),
    "one size-scaled position": (6_000.0, [("ETHUSDT", -100.0, 2_000.0, 2_030.0)]),
    "several positions": (
        9_000.0,
        [("BTCUSDT", 10.0, 30_000.0, 29_400.0), ("ETHUSDT", 100.0, 2_000.0, 1_990.0)],
    ),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_liquidation_reduction_restores_initial_margin(name: str) -> None:
    engine, event = crashed(*SCENARIOS[name])
    assert event.type == "liquidation"
    assert not restored(engine)
    reduce(engine, event)
    assert restored(engine)
    assert engine.verify() == []


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_liquidation_reduction_is_the_smallest_that_does(name: str) -> None:
    engine, event = crashed(*SCENARIOS[name])
    reduce(engine, event, scale=1.0 - 1e-6)
    assert not restored(engine)


def test_several_positions_are_reduced_by_the_same_fraction() -> None:
    _, event = crashed(*SCENARIOS["several positions"])
    held = {p.symbol: abs(p.qty) for p in event.positions}
    fractions = {r.symbol: r.qty / held[r.symbol] for r in event.reductions}
    assert fractions["BTCUSDT"] == pytest.approx(fractions["ETHUSDT"], rel=1e-12)


def test_one_tiered_position_matches_the_closed_form() -> None:
    _, event = crashed(*SCENARIOS["one tiered position"])
    # equity 100 against IM = 29600 x 0.8 %: keep 100 / 236.8 of the position
    (reduction,) = event.reductions
    assert reduction.qty == pytest.approx(1.0 - 100.0 / 236.8, rel=1e-12)


def test_a_reduction_into_a_lower_bracket_uses_that_brackets_rate() -> None:
    _, event = crashed(*SCENARIOS["one position crossing down a bracket"])
    # equity 350; 3 BTC at 29450 = 88350 is in the 1 % bracket, but the kept part
    # falls below 50000 where the rate is 0.8 %: keep 350 / (88350 x 0.008).
    (reduction,) = event.reductions
    assert reduction.qty == pytest.approx(3.0 * (1.0 - 350.0 / 706.8), rel=1e-12)


def test_a_size_scaled_reduction_solves_the_quadratic() -> None:
    _, event = crashed(*SCENARIOS["one size-scaled position"])
    # IM(k) = 203000 k (0.02 + 0.00005 x 100 k) = 3000  ->  1015 k^2 + 4060 k - 3000 = 0
    kept = (-4060.0 + (4060.0**2 + 4 * 1015.0 * 3000.0) ** 0.5) / (2 * 1015.0)
    (reduction,) = event.reductions
    assert reduction.qty == pytest.approx(100.0 * (1.0 - kept), rel=1e-12)


def test_a_bankrupt_account_is_closed_completely() -> None:
    _, event = crashed(1_000.0, [("BTCUSDT", 3.0, 30_000.0, 29_000.0)])
    assert event.type == "bankruptcy"
    assert [(r.symbol, r.qty) for r in event.reductions] == [("BTCUSDT", 3.0)]
    # MM in the second bracket: 87000 x 0.5 % - cum 50
    assert event.shortfall == pytest.approx(2_000.0 + 87_000.0 * 0.005 - 50.0)


def test_kept_fraction_is_one_when_equity_covers_initial_margin() -> None:
    engine = Engine([BTC])
    k = kept_fraction(
        engine.book,
        np.array([0]),
        np.array([1.0]),
        np.array([30_000.0]),
        np.array([np.nan]),
        np.array([1.0]),
        equity=1_000.0,
    )
    assert k == 1.0


def test_the_liquidation_price_is_where_equity_meets_maintenance() -> None:
    engine, event = crashed(2_000.0, [("BTCUSDT", 3.0, 30_000.0, 29_500.0)])
    price = event.positions[0].liquidation_price
    assert price is not None
    engine.apply([], [tick("BTCUSDT", price, 9)], 9)
    risk = engine.account_risk("a")
    assert risk.equity == pytest.approx(risk.maintenance_margin, rel=1e-9)


def test_a_long_covered_at_any_price_has_no_liquidation_price() -> None:
    engine = Engine([BTC])
    engine.apply(
        [
            Transfer(transfer_id="t", account="a", asset="USDT", amount=100_000.0, ts=0),
            trade("o", "BTCUSDT", "buy", 1.0, 30_000.0),
        ],
        [],
        0,
    )
    (position,) = engine.account_risk("a").positions
    assert position.liquidation_price is None
    assert position.bankruptcy_price is None


def test_leverage_raises_the_initial_margin_the_reduction_aims_at() -> None:
    engine = Engine([BTC])
    engine.apply(
        [
            Transfer(transfer_id="t", account="a", asset="USDT", amount=2_000.0, ts=0),
            MarginSettings(settings_id="s", account="a", ts=0, symbol="BTCUSDT", leverage=20.0),
            trade("o", "BTCUSDT", "buy", 3.0, 30_000.0),
        ],
        [],
        0,
    )
    (event,) = engine.apply([], [tick("BTCUSDT", 29_400.0, 1)], 1)
    # equity 200 against IM = 88200 / 20 = 4410
    assert event.reductions[0].qty == pytest.approx(3.0 * (1.0 - 200.0 / 4_410.0), rel=1e-12)
