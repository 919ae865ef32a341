"""Live exposure: bad debt, liquidation exposure and open interest, worked by hand."""

from __future__ import annotations

import pytest

from monitor.engine import Engine, exposure
from monitor.schema import Fill, Instrument, PriceTick, Tier, TieredMargin, Transfer

pytestmark = pytest.mark.unit


def linear(symbol: str, base: str) -> Instrument:
    return Instrument(
        symbol=symbol,
        kind="linear",
        quote="USDT",
        base=base,
        margin=TieredMargin(tiers=(Tier(floor=0, cap=1e12, mmr=0.01, imr=0.02),)),
    )


def book() -> Engine:
    engine = Engine([linear("BTCUSDT", "BTC"), linear("ETHUSDT", "ETH")])
    engine.apply(
        [
            # bust: 1 BTC long at 100 with 10 USDT -> at 80: equity 10 - 20 = -10, bankrupt.
            Transfer(transfer_id="t1", account="bust", asset="USDT", amount=10, ts=0),
            Fill(
                fill_id="f1", account="bust", symbol="BTCUSDT", side="buy", qty=1, price=100, ts=0
            ),
            # deep: 10 ETH long at 10 with 21 USDT -> at 8: equity 21 - 20 = 1, MM 0.8:
            # healthy... at 7.95: equity 0.5, MM 0.795, in liquidation.
            Transfer(transfer_id="t2", account="deep", asset="USDT", amount=21, ts=0),
            Fill(
                fill_id="f2", account="deep", symbol="ETHUSDT", side="buy", qty=10, price=10, ts=0
            ),
            # fine: short 3 BTC and long 2 ETH, well funded.
            Transfer(transfer_id="t3", account="fine", asset="USDT", amount=1e6, ts=0),
            Fill(
                fill_id="f3", account="fine", symbol="BTCUSDT", side="sell", qty=3, price=100, ts=0
            ),
            Fill(fill_id="f4", account="fine", symbol="ETHUSDT", side="buy", qty=2, price=10, ts=0),
        ],
        [
            PriceTick(symbol="BTCUSDT", mark_price=100, ts=0),
            PriceTick(symbol="ETHUSDT", mark_price=10, ts=0),
        ],
        0,
    )
    engine.apply(
        [],
        [
            PriceTick(symbol="BTCUSDT", mark_price=80, ts=1),
            PriceTick(symbol="ETHUSDT", mark_price=7.95, ts=1),
        ],
        1,
    )
    return engine


def test_bad_debt_is_what_bankrupt_accounts_owe_beyond_their_collateral() -> None:
    found = exposure(book())
    assert (found.bankrupt_units, found.bad_debt) == (1, pytest.approx(10.0))
    assert found.bad_debt_by_underlying == {"BTC": pytest.approx(10.0), "ETH": 0.0}
    assert found.bad_debt_by_settle_asset == {"USDT": pytest.approx(10.0)}


def test_liquidation_exposure_weights_notional_by_depth_towards_bankruptcy() -> None:
    found = exposure(book())
    # deep: notional 10 x 7.95 = 79.5, MM 0.795, equity 21 - 20.5 = 0.5:
    # depth (0.795 - 0.5) / 0.795.
    depth = (0.795 - 0.5) / 0.795
    assert found.liquidation_units == 1
    assert found.liquidation_exposure == pytest.approx(79.5 * depth)
    assert found.liquidation_exposure_by_underlying["ETH"] == pytest.approx(79.5 * depth)
    assert found.liquidation_exposure_by_underlying["BTC"] == 0.0


def test_open_interest_is_the_long_side_per_instrument() -> None:
    assert exposure(book()).open_interest == {"BTCUSDT": 1.0, "ETHUSDT": 12.0}
