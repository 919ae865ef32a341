"""Portfolio margin through `liqmon run` on the real broker: a crash liquidates the
unhedged account and leaves the hedged one (a future with a protective put) standing."""

from __future__ import annotations

import msgspec
import pytest

from monitor.schema import Fill, Instrument, MarginSettings, PriceTick
from tests.integration.monitor_harness import MonitorHarness, by_account, deposit, now_ms

pytestmark = pytest.mark.kafka

DAY = 86_400_000
PUT = "BTC-P-100000"


def instruments(t0: int) -> list[Instrument]:
    return msgspec.convert(
        [
            {
                "symbol": "BTC-USD",
                "kind": "linear",
                "quote": "USDT",
                "base": "BTC",
                "margin": {
                    "model": "tiered",
                    "tiers": [{"floor": 0, "cap": 1e12, "mmr": 0.05, "imr": 0.1}],
                },
            },
            {
                "symbol": PUT,
                "kind": "option",
                "quote": "USDT",
                "base": "BTC",
                "underlying": "BTC-USD",
                "strike": 100_000,
                "expiry": t0 + 28 * DAY,
                "option_type": "put",
                "margin": {"model": "option_standard"},
            },
        ],
        list[Instrument],
    )


def fill(account: str, symbol: str, price: float, ts: int) -> Fill:
    return Fill(
        fill_id=f"f-{account}-{symbol}",
        account=account,
        symbol=symbol,
        side="buy",
        qty=1.0,
        price=price,
        ts=ts,
    )


def portfolio(account: str, ts: int) -> MarginSettings:
    return MarginSettings(settings_id=f"pm-{account}", account=account, mode="portfolio", ts=ts)


async def test_crash_liquidates_the_unhedged_portfolio_account_not_the_hedged_one(
    harness: MonitorHarness,
) -> None:
    h = harness
    t0 = now_ms()
    await h.prices(
        PriceTick(symbol="BTC-USD", mark_price=100_000.0, ts=t0),
        PriceTick(symbol=PUT, mark_price=5_520.0, mark_iv=0.5, ts=t0),
    )
    await h.start_monitor(instruments(t0))
    await h.ledger(
        portfolio("hedged", t0),
        deposit("hedged", 30_520, t0),
        fill("hedged", "BTC-USD", 100_000.0, t0),
        fill("hedged", PUT, 5_520.0, t0),
        portfolio("unhedged", t0),
        deposit("unhedged", 25_000, t0),
        fill("unhedged", "BTC-USD", 100_000.0, t0),
    )
    # Steps of 5 % (inside the price guard's band), stamped now: a tick older than the
    # guard's max_price_age_s (the monitor may take seconds to start on a busy machine)
    # would be held as stale and liquidate nobody. Each level's last price is sent once
    # more: if the monitor read several steps in one batch, the guard may hold the last as
    # out of band against the price before the batch; a later tick at the same level
    # confirms it. The fall stops at 85,000 (equity 10,000 against an MM of about 14,450)
    # until the liquidation is out: one batch holding every step down to 75,000 would
    # judge the account bankrupt in one collapsed event, with no liquidation of its own.
    t1 = max(now_ms(), t0 + 1)
    for k, price in enumerate((95_000.0, 90_000.0, 85_000.0, 85_000.0)):
        await h.prices(PriceTick(symbol="BTC-USD", mark_price=price, ts=t1 + k))
    await h.wait_events(
        lambda ev: "liquidation" in by_account(ev).get("unhedged", []), "unhedged liquidation"
    )
    t2 = max(now_ms(), t1 + 4)  # stamped now again: the wait may have taken seconds
    for k, price in enumerate((80_000.0, 75_000.0, 75_000.0)):
        await h.prices(PriceTick(symbol="BTC-USD", mark_price=price, ts=t2 + k))
    events = await h.wait_events(
        lambda ev: "bankruptcy" in by_account(ev).get("unhedged", []), "unhedged bankruptcy"
    )
    assert "hedged" not in by_account(events)
    assert "liquidation" in by_account(events)["unhedged"]
    liquidation = next(e for e in events if e.type == "liquidation")
    assert liquidation.trigger == "price"
    (group,) = liquidation.portfolio
    assert group.underlying == "BTC-USD"
    assert group.model == "pm_risk_matrix"
    assert group.worst_scenario.price_move == -0.16
    assert liquidation.maintenance_margin == pytest.approx(group.maintenance_margin)
    assert liquidation.equity <= liquidation.maintenance_margin
