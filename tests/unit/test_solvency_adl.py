"""The auto-deleveraging score, quantiles and queue, against hand-worked figures.

Score as BitMEX, Binance and Bybit publish it: PnL% x effective leverage when in profit,
PnL% / effective leverage at a loss; PnL% = uPnL / |entry value|, effective leverage =
|mark value| / equity.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.evaluate import load_request
from monitor.schema import (
    EvaluateAccount,
    EvaluatePosition,
    EvaluateRequest,
    Instrument,
    PortfolioMarginParams,
    StressScenario,
    Tier,
    TieredMargin,
)
from monitor.solvency import (
    _stress,
    account_quantiles,
    adl_scores,
    book_state,
    quantiles,
    stress_report,
)

pytestmark = pytest.mark.unit


def test_score_is_profit_times_leverage_and_loss_over_leverage() -> None:
    # A: +100 on 1,000 of entry value = 10 %; 1,100 of mark value on 220 of equity = 5x.
    # B: -50 on 1,000 = -5 %; 950 on 95 = 10x. C: equity 0, not a candidate.
    score = adl_scores(
        upnl=np.array([100.0, -50.0, 10.0]),
        entry_value=np.array([1000.0, 1000.0, 1000.0]),
        mark_value=np.array([1100.0, -950.0, 1010.0]),
        unit_equity=np.array([220.0, 95.0, 0.0]),
    )
    assert score[0] == pytest.approx(0.1 * 5.0)
    assert score[1] == pytest.approx(-0.05 / 10.0)
    assert score[2] == -math.inf


def test_quantile_is_rank_over_holders_in_each_queue() -> None:
    found = quantiles(np.array([0, 0, 0, 1], dtype=np.intp), np.array([3.0, 1.0, 2.0, 5.0]))
    assert found.tolist() == pytest.approx([1.0, 1 / 3, 2 / 3, 1.0])


def _book() -> EvaluateRequest:
    tiers = (Tier(floor=0.0, cap=1e12, mmr=0.01, imr=0.02),)
    future = Instrument(
        symbol="BTCUSDT", kind="linear", quote="USDT", base="BTC", margin=TieredMargin(tiers=tiers)
    )
    # At 100 a +50 % move to 150. The short is 10 contracts on 200 of wallet: it loses 500,
    # 300 of bad debt. Longs: "low" 1 contract entered at 90 on 1,000 (PnL% at 150 is
    # 60/90, leverage 150 / 1,060); "high" 5 entered at 120 on 100 (150/120-1 = 25 %,
    # leverage 750 / 250 = 3): high ranks first.
    return EvaluateRequest(
        instruments=(future,),
        prices={"BTCUSDT": 100.0},
        accounts=(
            EvaluateAccount(
                account="short",
                collateral={"USDT": 200.0},
                positions=(EvaluatePosition(symbol="BTCUSDT", qty=-10.0, entry_price=100.0),),
            ),
            EvaluateAccount(
                account="low",
                collateral={"USDT": 1000.0},
                positions=(EvaluatePosition(symbol="BTCUSDT", qty=1.0, entry_price=90.0),),
            ),
            EvaluateAccount(
                account="high",
                collateral={"USDT": 100.0},
                positions=(EvaluatePosition(symbol="BTCUSDT", qty=5.0, entry_price=120.0),),
            ),
        ),
    )


def test_queue_ranks_the_other_side_when_the_fund_falls_short() -> None:
    state = book_state(load_request(_book()))
    rally = StressScenario(name="up", moves={"BTC": 0.5})
    report = stress_report(state, [rally], PortfolioMarginParams(), fund=100.0, ts=0)
    (result,) = report.scenarios
    assert result.bad_debt == pytest.approx(300.0)
    assert result.bankrupt == ("short",)
    assert result.coverage == pytest.approx(100.0 / 300.0)
    (queue,) = report.adl_candidates
    assert (queue.symbol, queue.side) == ("BTCUSDT", "long")
    assert queue.shortfall == pytest.approx(200.0)
    assert [c.account for c in queue.candidates] == ["high", "low"]
    high, low = queue.candidates
    assert high.score == pytest.approx((150.0 / 120.0 - 1.0) * 750.0 / 250.0)
    assert low.score == pytest.approx((60.0 / 90.0) * 150.0 / 1060.0)
    assert (high.quantile, low.quantile) == (1.0, 0.5)


def test_no_queue_while_the_fund_covers_the_worst_scenario() -> None:
    state = book_state(load_request(_book()))
    rally = StressScenario(name="up", moves={"BTC": 0.5})
    report = stress_report(state, [rally], PortfolioMarginParams(), fund=300.0, ts=0)
    assert report.adl_candidates == ()
    assert report.cover2 == pytest.approx(300.0)
    assert report.cover2_groups == ("short",)


def test_live_quantiles_rank_each_account_on_its_side_now() -> None:
    state = book_state(load_request(_book()))
    found = dict(zip(state.accounts, account_quantiles(state).tolist(), strict=True))
    # At 100: low is +10 in profit, alone in the long queue: "high" has lost its whole
    # 100 of wallet (equity 0), so it is not a candidate; the short is alone on its side.
    assert found["short"] == 1.0
    assert found["low"] == 1.0
    assert math.isnan(found["high"])


def test_stress_in_passes_of_a_few_scenarios_equals_one_pass_over_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The book is stressed a few scenarios per pass (memory): the report equals the one
    of a single pass over every scenario, field for field."""
    state = book_state(load_request(_book()))
    rng = np.random.default_rng(3)
    scenarios = [
        StressScenario(name=f"s{k}", moves={"BTC": float(m)})
        for k, m in enumerate(rng.uniform(-0.9, 1.5, 11))
    ]
    report = stress_report(state, scenarios, PortfolioMarginParams(), fund=1.0, ts=0)
    monkeypatch.setattr(_stress, "SCENARIOS_PER_PASS", 100)
    whole = stress_report(state, scenarios, PortfolioMarginParams(), fund=1.0, ts=0)
    assert report == whole
    assert _stress.SCENARIOS_PER_PASS == 100 > len(scenarios) > 4
    assert report.worst_scenario is not None
    assert report.adl_candidates  # the worst's debt exceeds the fund: queues
    assert sum(r.bankrupt_accounts for r in report.scenarios) > 0
