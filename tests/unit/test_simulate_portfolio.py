"""Simulated hedged books: in a crash the standard twins are liquidated, the portfolio twins
(same positions, same deposit) are not."""

from __future__ import annotations

from monitor.engine import Engine
from monitor.option_market import Smile, option_chain, option_ticks
from monitor.portfolio_market import portfolio_books
from monitor.schema import Instrument, MarginSettings, PriceTick, Tier, TieredMargin

SPOT = 91_500.0
T0 = 1_732_000_000_000
UNDERLYING = Instrument(
    symbol="BTCUSDT",
    kind="linear",
    quote="USDT",
    base="BTC",
    margin=TieredMargin(tiers=(Tier(floor=0, cap=1e12, mmr=0.004, imr=0.008),)),
)


def states(engine: Engine, twin: str) -> set[str]:
    return {
        engine.account_risk(name).state
        for name in engine.book.account_names
        if name.split("-")[1] == twin
    }


def test_a_crash_liquidates_standard_twins_and_spares_portfolio_twins() -> None:
    chain = option_chain(UNDERLYING, SPOT, T0)
    smile = Smile(chain, SPOT)
    engine = Engine([UNDERLYING, *chain])
    opening = [PriceTick(symbol="BTCUSDT", mark_price=SPOT, ts=T0), *option_ticks(smile, SPOT, T0)]
    engine.apply([], opening, T0)
    ledger = list(portfolio_books(UNDERLYING, chain, smile, SPOT, T0, 25, seed=3))
    assert sum(isinstance(e, MarginSettings) for e in ledger) == 25
    assert engine.apply(ledger, [], T0) == []  # everyone starts healthy
    assert states(engine, "pm") == states(engine, "std") == {"healthy"}
    events = []
    for step, drop in enumerate((0.05, 0.1, 0.15, 0.2, 0.25, 0.3), start=1):
        price, ts = SPOT * (1.0 - drop), T0 + step * 1_000
        ticks = [
            PriceTick(symbol="BTCUSDT", mark_price=price, ts=ts),
            *option_ticks(smile, price, ts),
        ]
        events += engine.apply([], ticks, ts)
    assert states(engine, "pm") == {"healthy"}
    assert states(engine, "std") == {"liquidation"}
    liquidated = {e.account for e in events if e.type == "liquidation"}
    assert len(liquidated) == 25
    assert all("-std-" in name for name in liquidated)
    assert engine.verify() == []
