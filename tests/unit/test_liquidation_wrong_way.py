"""Liquidation and bankruptcy prices when the instrument's mark also prices collateral.

Plugged back: re-evaluating the same book at a position's reported liquidation price
gives equity == maintenance margin, and at its bankruptcy price equity == 0, through
`monitor.evaluate` (the engine) and not through the solver under test.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from monitor.engine import Engine, EngineConfig
from monitor.evaluate import evaluate
from monitor.schema import (
    AccountRisk,
    CollateralAsset,
    EvaluateRequest,
    Fill,
    Instrument,
    PriceTick,
    Tier,
    TieredMargin,
    Transfer,
)

pytestmark = pytest.mark.unit

BTCUSDT: dict[str, Any] = {
    "symbol": "BTCUSDT",
    "kind": "linear",
    "quote": "USDT",
    "base": "BTC",
    "margin": {
        "model": "tiered",
        "tiers": [{"floor": 0, "cap": 1e9, "mmr": 0.005, "imr": 0.01}],
    },
}
# Issue 8, item 10: 2 BTC long at 75,000 marked at 60,000, 1 BTC of collateral priced by
# BTCUSDT itself, 0.5 % maintenance. Collateral held still: 45,226.13 / 45,000. Moving
# with the mark: equity(P) = P + 2 (P - 75,000) = 0 at 50,000, and = 0.005 x 2P at
# 150,000 / 2.99 = 50,167.22.
ISSUE_CASE: dict[str, Any] = {
    "instruments": [BTCUSDT],
    "prices": {"BTCUSDT": 60_000.0},
    "collateral_assets": [{"asset": "BTC", "haircut": 0.0, "price_symbol": "BTCUSDT"}],
    "accounts": [
        {
            "account": "w",
            "collateral": {"BTC": 1.0},
            "positions": [{"symbol": "BTCUSDT", "qty": 2.0, "entry_price": 75_000.0}],
        }
    ],
}


def _evaluate(request: dict[str, Any]) -> list[AccountRisk]:
    import msgspec

    return evaluate(msgspec.convert(request, EvaluateRequest))


def _at(request: dict[str, Any], symbol: str, price: float) -> dict[str, Any]:
    moved = copy.deepcopy(request)
    moved["prices"][symbol] = price
    return moved


def test_the_issues_case_moves_the_collateral_with_the_mark() -> None:
    (account,) = _evaluate(ISSUE_CASE)
    (position,) = account.positions
    assert position.bankruptcy_price == pytest.approx(50_000.0, rel=1e-12)
    assert position.liquidation_price == pytest.approx(150_000.0 / 2.99, rel=1e-12)
    assert round(position.liquidation_price, 2) == 50_167.22


def test_the_issues_case_plugs_back_to_maintenance_and_to_zero() -> None:
    (position,) = _evaluate(ISSUE_CASE)[0].positions
    assert position.liquidation_price is not None
    assert position.bankruptcy_price is not None
    (at_liquidation,) = _evaluate(_at(ISSUE_CASE, "BTCUSDT", position.liquidation_price))
    assert at_liquidation.equity == pytest.approx(at_liquidation.maintenance_margin, rel=1e-12)
    assert at_liquidation.state == "liquidation"
    (at_bankruptcy,) = _evaluate(_at(ISSUE_CASE, "BTCUSDT", position.bankruptcy_price))
    assert at_bankruptcy.equity == pytest.approx(0.0, abs=1e-9 * 150_000)
    assert at_bankruptcy.state == "bankrupt"


BTCUSDT_TIERED: dict[str, Any] = {
    **BTCUSDT,
    "margin": {
        "model": "tiered",
        "tiers": [
            {"floor": 0, "cap": 50_000, "mmr": 0.004, "imr": 0.008},
            {"floor": 50_000, "cap": 250_000, "mmr": 0.005, "imr": 0.01},
            {"floor": 250_000, "cap": 1e12, "mmr": 0.01, "imr": 0.02},
        ],
    },
}
ETHBTC: dict[str, Any] = {
    "symbol": "ETHBTC",
    "kind": "linear",
    "quote": "BTC",
    "base": "ETH",
    "margin": {
        "model": "tiered",
        "tiers": [{"floor": 0, "cap": 1e9, "mmr": 0.01, "imr": 0.02}],
    },
}


def _book(collateral: dict[str, float], positions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "instruments": [BTCUSDT_TIERED, ETHBTC],
        "prices": {"BTCUSDT": 60_000.0, "ETHBTC": 0.05, "ETH": 3_000.0},
        "collateral_assets": [
            {"asset": "BTC", "haircut": 0.2, "price_symbol": "BTCUSDT"},
            {"asset": "ETH", "haircut": 0.1},
        ],
        "accounts": [{"account": "w", "collateral": collateral, "positions": positions}],
    }


BOOKS = {
    "long, haircut collateral, brackets crossed": _book(
        {"BTC": 3.0, "USDT": -20_000.0},
        [{"symbol": "BTCUSDT", "qty": 5.0, "entry_price": 70_000.0}],
    ),
    "short against BTC collateral": _book(
        {"BTC": 1.0}, [{"symbol": "BTCUSDT", "qty": -2.0, "entry_price": 58_000.0}]
    ),
    "a BTC debt under a long": _book(
        {"BTC": -0.5, "USDT": 60_000.0},
        [{"symbol": "BTCUSDT", "qty": 1.5, "entry_price": 61_000.0}],
    ),
    "a position settling in BTC beside": _book(
        {"BTC": 0.5, "ETH": 2.0},
        [
            {"symbol": "BTCUSDT", "qty": 1.0, "entry_price": 64_000.0},
            {"symbol": "ETHBTC", "qty": -40.0, "entry_price": 0.048},
        ],
    ),
}


@pytest.mark.parametrize("request_", BOOKS.values(), ids=BOOKS.keys())
def test_every_position_plugs_back_to_maintenance_and_to_zero(request_: dict[str, Any]) -> None:
    (account,) = _evaluate(request_)
    checked = 0
    for position in account.positions:
        scale = abs(account.collateral_value) + sum(abs(p.notional) for p in account.positions)
        if position.liquidation_price is not None:
            (moved,) = _evaluate(_at(request_, position.symbol, position.liquidation_price))
            assert moved.equity == pytest.approx(moved.maintenance_margin, abs=1e-10 * scale)
            checked += 1
        if position.bankruptcy_price is not None:
            (moved,) = _evaluate(_at(request_, position.symbol, position.bankruptcy_price))
            assert moved.equity == pytest.approx(0.0, abs=1e-10 * scale)
            checked += 1
    assert checked >= 2


def test_an_isolated_position_is_judged_on_its_own_margin_not_the_btc_wallet() -> None:
    request = copy.deepcopy(ISSUE_CASE)
    request["accounts"][0]["mode"] = "isolated"
    request["accounts"][0]["positions"][0]["margin"] = 40_000.0
    (position,) = _evaluate(request)[0].positions
    # Margin 40,000 + 2 (P - 75,000) = 0.005 x 2P, whatever the BTC wallet is worth.
    assert position.bankruptcy_price == pytest.approx(55_000.0, rel=1e-12)
    assert position.liquidation_price == pytest.approx(110_000.0 / 1.99, rel=1e-12)
    assert position.liquidation_price is not None
    (moved,) = _evaluate(_at(request, "BTCUSDT", position.liquidation_price)).pop().positions
    assert moved.margin_ratio == pytest.approx(1.0, rel=1e-12)
    assert moved.state == "liquidation"


def test_the_monitor_liquidates_at_the_price_its_event_announced() -> None:
    btc = Instrument(
        symbol="BTCUSDT",
        kind="linear",
        quote="USDT",
        base="BTC",
        margin=TieredMargin(tiers=(Tier(floor=0, cap=1e9, mmr=0.005, imr=0.01),)),
    )
    config = EngineConfig(collateral=(CollateralAsset(asset="BTC", price_symbol="BTCUSDT"),))
    engine = Engine([btc], config)
    engine.apply(
        [
            Transfer(transfer_id="t", account="w", asset="BTC", amount=1.0, ts=0),
            Fill(fill_id="f", account="w", symbol="BTCUSDT", side="buy", qty=2, price=75_000, ts=0),
        ],
        [PriceTick(symbol="BTCUSDT", mark_price=60_000.0, ts=1)],
        1,
    )
    (position,) = engine.account_risk("w").positions
    assert position.liquidation_price == pytest.approx(150_000.0 / 2.99, rel=1e-12)
    above = position.liquidation_price * (1 + 1e-6)
    events = engine.apply([], [PriceTick(symbol="BTCUSDT", mark_price=above, ts=2)], 2)
    assert [e.state for e in events] == ["margin_call"]
    below = position.liquidation_price * (1 - 1e-6)
    (event,) = engine.apply([], [PriceTick(symbol="BTCUSDT", mark_price=below, ts=3)], 3)
    assert event.type == "liquidation"
    assert event.positions[0].bankruptcy_price == pytest.approx(50_000.0, rel=1e-9)
