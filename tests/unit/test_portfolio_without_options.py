"""A portfolio account on a venue that lists no options at all is judged, not crashed."""

from __future__ import annotations

import pytest

from monitor.engine import Engine
from monitor.schema import (
    Fill,
    Instrument,
    MarginSettings,
    PriceTick,
    Tier,
    TieredMargin,
    Transfer,
)

pytestmark = pytest.mark.unit

BTC = Instrument(
    symbol="BTCUSDT",
    kind="linear",
    quote="USDT",
    base="BTC",
    margin=TieredMargin(tiers=(Tier(floor=0, cap=1e12, mmr=0.005, imr=0.01),)),
)


def test_a_portfolio_account_with_only_a_future_is_judged_on_every_tick() -> None:
    engine = Engine([BTC])
    engine.apply(
        [
            Transfer(transfer_id="t", account="p", asset="USDT", amount=1_000.0, ts=0),
            MarginSettings(settings_id="s", account="p", mode="portfolio", ts=0),
            Fill(fill_id="f", account="p", symbol="BTCUSDT", side="buy", qty=1, price=100, ts=0),
        ],
        [PriceTick(symbol="BTCUSDT", mark_price=100.0, ts=0)],
        0,
    )
    engine.apply([], [PriceTick(symbol="BTCUSDT", mark_price=90.0, ts=1)], 1)
    risk = engine.account_risk("p")
    assert risk.mode == "portfolio"
    assert risk.equity == pytest.approx(990.0)
    assert risk.maintenance_margin > 0.0
    assert engine.verify() == []
