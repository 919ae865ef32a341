"""The comparison tolerance is relative to the figures compared (issue 8, items 11 and 13)."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pytest

from monitor.evaluate import evaluate
from monitor.schema import EvaluateRequest
from monitor.states import BANKRUPT, HEALTHY, LIQUIDATION, REL_TOL, classify, slack

pytestmark = pytest.mark.unit

WIDE: dict[str, Any] = {
    "symbol": "BTCUSDT",
    "kind": "linear",
    "quote": "USDT",
    "base": "BTC",
    "margin": {
        "model": "tiered",
        "tiers": [{"floor": 0, "cap": 1e16, "mmr": 0.5, "imr": 1.0}],
    },
}


def _one(account: dict[str, Any], prices: dict[str, float] | None = None) -> Any:
    request = {
        "instruments": [WIDE],
        "prices": prices if prices is not None else {"BTCUSDT": 60_000.0},
        "accounts": [account],
    }
    (risk,) = evaluate(msgspec.convert(request, EvaluateRequest))
    return risk


def test_positive_equity_under_a_huge_position_is_not_bankrupt() -> None:
    # 1,000 USDT against 1.2e12 of notional: IM + MM = 1.8e12, whose 1e-9 is 1,800, once
    # made 1,000 of equity compare as <= 0.
    risk = _one(
        {
            "account": "whale",
            "collateral": {"USDT": 1_000.0},
            "positions": [{"symbol": "BTCUSDT", "qty": 2e7, "entry_price": 60_000.0}],
        }
    )
    assert risk.equity == 1_000.0
    assert risk.maintenance_margin == pytest.approx(6e11)
    assert risk.state == "liquidation"


def test_equity_against_zero_allows_only_its_own_rounding() -> None:
    equity = np.array([1e-5, -1e-5, 1e-12])
    state = classify(
        np.full(3, HEALTHY, dtype=np.int8),
        equity,
        initial=np.full(3, 1e15),
        maintenance=np.full(3, 5e14),
        equity_scale=np.full(3, 1_000.0),
        open_positions=np.ones(3, dtype=np.intp),
        margin_call_ratio=0.8,
        band=0.05,
    )
    # 1e-5 is above 1e-9 x 1,000 (not bankrupt, though far below MM); 1e-12 is rounding.
    assert state.tolist() == [LIQUIDATION, BANKRUPT, BANKRUPT]


def test_the_tolerance_is_rel_tol_times_the_magnitudes_of_both_sides() -> None:
    assert slack(np.array([1_000.0]), np.array([500.0])).tolist() == [REL_TOL * 1_500.0]
    assert REL_TOL <= 1e-9


def test_an_empty_account_with_zero_equity_has_no_margin_ratio() -> None:
    risk = _one({"account": "empty"})
    assert (risk.equity, risk.maintenance_margin) == (0.0, 0.0)
    assert risk.margin_ratio is None
    assert risk.state == "healthy"


def test_an_empty_account_with_equity_has_a_zero_margin_ratio() -> None:
    risk = _one({"account": "idle", "collateral": {"USDT": 10.0}})
    assert risk.margin_ratio == 0.0
