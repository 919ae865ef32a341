"""``liqmon evaluate`` for accounts in portfolio mode (risk-matrix, Greeks and hybrid)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from monitor.errors import InputError
from monitor.evaluate import evaluate
from monitor.schema import AccountRisk, EvaluateRequest

REQUEST = json.loads(
    (Path(__file__).resolve().parents[1] / "data" / "portfolio_margin_request.json").read_text()
)


def run(request: dict[str, Any]) -> dict[str, AccountRisk]:
    risks = evaluate(msgspec.convert(request, EvaluateRequest))
    return {risk.account: risk for risk in risks}


def test_a_covered_call_on_portfolio_margin_needs_less_than_on_standard_margin() -> None:
    risks = run(REQUEST)
    hedged, standard = risks["hedged"], risks["hedged-std"]
    assert hedged.equity == pytest.approx(standard.equity)
    assert hedged.initial_margin < standard.initial_margin
    assert hedged.maintenance_margin < standard.maintenance_margin
    (group,) = hedged.portfolio
    assert group.underlying == "BTC-USD"
    assert len(group.risk_matrix) == 33
    assert group.maintenance_margin == pytest.approx(
        group.loss + group.futures_contingency + group.option_contingency
    )
    assert group.initial_margin == pytest.approx(1.25 * group.maintenance_margin)
    assert hedged.maintenance_margin == pytest.approx(group.maintenance_margin)
    worst = min(group.risk_matrix, key=lambda cell: cell.pnl * cell.weight)
    assert group.loss == pytest.approx(-worst.pnl * worst.weight)
    assert (group.worst_scenario.price_move, group.worst_scenario.vol_case) == (
        worst.price_move,
        worst.vol_case,
    )
    assert standard.portfolio == ()


def test_naked_short_call_is_bitten_by_the_extended_table() -> None:
    (group,) = run(REQUEST)["naked"].portfolio
    assert group.worst_scenario.price_move == 3.0
    assert group.loss_reducers[0].symbol == "BTC-C-100000"
    assert group.loss_reducers[0].loss_reduction == pytest.approx(group.loss)


def test_liquidation_move_plugs_back_to_equity_equal_to_maintenance_margin() -> None:
    request = copy.deepcopy(REQUEST)
    request["accounts"] = [dict(REQUEST["accounts"][0], collateral={"USDC": 40_000})]
    (group,) = run(request)["hedged"].portfolio
    move = group.liquidation_move
    assert move is not None
    assert -1.0 < move < 0.0
    moved = copy.deepcopy(request)
    moved["prices"] = {"BTC-USD": 100_000 * (1.0 + move)}
    at_move = run(moved)["hedged"]
    assert at_move.equity == pytest.approx(at_move.maintenance_margin, rel=1e-9)


def test_liquidation_move_is_null_when_no_move_within_100_percent_reaches_mm() -> None:
    request = copy.deepcopy(REQUEST)
    request["accounts"] = [dict(REQUEST["accounts"][0], collateral={"USDC": 10_000_000})]
    (group,) = run(request)["hedged"].portfolio
    assert group.liquidation_move is None


def test_hybrid_floor_makes_a_perfectly_hedged_book_post_a_share_of_standard_im() -> None:
    request = copy.deepcopy(REQUEST)
    request["portfolio_margin"] = {"BTC-USD": {"model": "pm_hybrid", "hybrid_floor": 0.5}}
    request["accounts"] = [
        {
            "account": "synthetic",
            "mode": "portfolio",
            "collateral": {"USDC": 50_000},
            "positions": [
                {"symbol": "BTC-USD", "qty": 1, "entry_price": 100_000},
                {"symbol": "BTC-C-100000", "qty": -1, "entry_price": 5_000},
                {"symbol": "BTC-P-100000", "qty": 1, "entry_price": 5_000},
            ],
        }
    ]
    (group,) = run(request)["synthetic"].portfolio
    assert group.model == "pm_hybrid"
    assert group.loss == pytest.approx(0.0, abs=1e-6)
    assert group.maintenance_margin == pytest.approx(group.futures_contingency)
    assert group.initial_margin == pytest.approx(0.5 * group.standard_initial_margin)
    assert group.initial_margin > 1.25 * group.maintenance_margin


@pytest.mark.parametrize("extreme_moves", [[], [-0.66, -0.33, 0.5, 1.0, 2.0, 3.0]])
def test_greeks_model_reports_its_error_against_full_revaluation(
    extreme_moves: list[float],
) -> None:
    request = copy.deepcopy(REQUEST)
    request["portfolio_margin"] = {
        "BTC-USD": {"model": "pm_greeks", "extreme_moves": extreme_moves}
    }
    (group,) = run(request)["hedged"].portfolio
    assert group.model == "pm_greeks"
    assert group.full_revaluation_loss is not None
    request["portfolio_margin"] = {"BTC-USD": {"extreme_moves": extreme_moves}}
    full = run(request)["hedged"].portfolio[0].loss
    assert group.full_revaluation_loss == pytest.approx(full)
    assert group.loss != pytest.approx(full, rel=1e-6)  # an approximation, not the same
    if extreme_moves:  # a quadratic in +300 %: far off, which is why the error is reported
        assert group.loss > 5 * full
    else:  # within +/-16 % it is close (here 10 %: vega is linear in a 23-point vol move)
        assert group.loss == pytest.approx(full, rel=0.15)


@pytest.mark.parametrize(
    ("portfolio_margin", "where"),
    [
        ({"ETH-USD": {}}, "$.portfolio_margin.ETH-USD: no such underlying group"),
        ({"BTC-USD": {"price_steps": 8}}, "$.portfolio_margin.BTC-USD.price_steps: 8 must be odd"),
        ({"BTC-USD": {"im_factor": 0.5}}, "$.portfolio_margin.BTC-USD.im_factor: 0.5 must be"),
    ],
)
def test_bad_portfolio_parameters_are_one_line_errors(
    portfolio_margin: dict[str, Any], where: str
) -> None:
    request = dict(REQUEST, portfolio_margin=portfolio_margin)
    with pytest.raises(InputError) as raised:
        run(request)
    assert str(raised.value).startswith(where)
    assert "\n" not in str(raised.value)
