"""Book-wide stress equals a brute-force evaluation of each account at the shocked prices.

The stress computes every unit's scenario P&L as one sparse product of quantities and
per-instrument value changes; the reference loads the same accounts into ``evaluate``
once per scenario at the shocked marks (the public what-if path: a fresh engine valued
from scratch) and sums ``max(0, -equity)`` over the accounts.
"""

from __future__ import annotations

import math

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.evaluate import evaluate, load_request
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
from monitor.solvency import book_state, stress_report


def _linear(symbol: str, base: str, size: float = 1.0) -> Instrument:
    tiers = (Tier(floor=0.0, cap=1e15, mmr=0.01, imr=0.02),)
    return Instrument(
        symbol=symbol,
        kind="linear",
        quote="USDT",
        base=base,
        contract_size=size,
        margin=TieredMargin(tiers=tiers),
    )


INSTRUMENTS = (
    _linear("BTCUSDT", "BTC"),
    _linear("BTCUSDT-Q", "BTC", 0.01),
    _linear("ETHUSDT", "ETH"),
)
PRICES = {"BTCUSDT": 30_000.0, "BTCUSDT-Q": 30_500.0, "ETHUSDT": 2_000.0}
BASE_OF = {i.symbol: i.base for i in INSTRUMENTS}


@st.composite
def accounts(draw: st.DrawFn) -> tuple[EvaluateAccount, ...]:
    found = []
    for k in range(draw(st.integers(1, 12))):
        symbols = draw(
            st.lists(st.sampled_from(sorted(PRICES)), min_size=1, max_size=3, unique=True)
        )
        positions = tuple(
            EvaluatePosition(
                symbol=s,
                qty=draw(st.sampled_from((-1, 1))) * draw(st.floats(0.01, 50.0)),
                entry_price=PRICES[s] * draw(st.floats(0.8, 1.2)),
            )
            for s in symbols
        )
        found.append(
            EvaluateAccount(
                account=f"a{k}",
                collateral={"USDT": draw(st.floats(0.0, 500_000.0))},
                positions=positions,
            )
        )
    return tuple(found)


scenarios = st.lists(
    st.builds(
        lambda k, btc, eth, other: (
            StressScenario(
                name=f"s{k}",
                moves={"BTC": btc} if btc is not None else {},
                default_move=other,
                vol="up",
            )
            if eth is None
            else StressScenario(name=f"s{k}", moves={"ETH": eth} | ({"BTC": btc} if btc else {}))
        ),
        st.integers(0, 10_000),
        st.none() | st.floats(-0.95, 1.5),
        st.none() | st.floats(-0.95, 1.5),
        st.floats(-0.95, 1.5),
    ),
    min_size=1,
    max_size=5,
    unique_by=lambda s: s.name,
)


def _shocked(scenario: StressScenario) -> dict[str, float]:
    return {
        symbol: price * (1.0 + scenario.moves.get(BASE_OF[symbol], scenario.default_move))
        for symbol, price in PRICES.items()
    }


@settings(max_examples=60, deadline=None)
@given(accounts(), scenarios, st.floats(0.0, 1e6))
def test_stress_equals_brute_force_evaluation(
    book: tuple[EvaluateAccount, ...], stresses: list[StressScenario], fund: float
) -> None:
    request = EvaluateRequest(instruments=INSTRUMENTS, prices=PRICES, accounts=book)
    report = stress_report(
        book_state(load_request(request)),
        stresses,
        PortfolioMarginParams(),
        fund=fund,
        ts=0,
        report_accounts=len(book),
    )
    totals = []
    for scenario, result in zip(stresses, report.scenarios, strict=True):
        shocked = msgspec.structs.replace(request, prices=_shocked(scenario))
        risks = evaluate(shocked)
        debts = {r.account: max(0.0, -r.equity) for r in risks}
        expected = sum(debts.values())
        totals.append(expected)
        scale = sum(
            abs(r.collateral_value) + sum(abs(p.unrealized_pnl) for p in r.positions) for r in risks
        )
        assert math.isclose(result.bad_debt, expected, rel_tol=1e-9, abs_tol=1e-9 * (1 + scale))
        state = {r.account: r.state for r in risks}
        # Every account the stress calls bankrupt is bankrupt in the engine at those prices,
        # and every account clearly below zero is called bankrupt.
        assert all(state[a] == "bankrupt" for a in result.bankrupt)
        clear = {
            r.account
            for r in risks
            if r.equity
            < -1e-6 * (abs(r.collateral_value) + sum(abs(p.unrealized_pnl) for p in r.positions))
        }
        assert clear <= set(result.bankrupt)
        assert result.bankrupt_accounts == len(result.bankrupt)
        if expected > 0:
            assert result.coverage is not None
            assert math.isclose(result.coverage, fund / result.bad_debt)
            top = max(debts.values())
            assert math.isclose(result.largest[0].bad_debt, top, rel_tol=1e-9, abs_tol=1e-6)
    worst = max(range(len(totals)), key=lambda s: report.scenarios[s].bad_debt)
    if report.scenarios[worst].bad_debt > 0:
        assert report.worst_scenario == stresses[worst].name
        shocked = msgspec.structs.replace(request, prices=_shocked(stresses[worst]))
        debts_sorted = sorted((max(0.0, -r.equity) for r in evaluate(shocked)), reverse=True)
        assert math.isclose(report.cover2, sum(debts_sorted[:2]), rel_tol=1e-9, abs_tol=1e-6)
    else:
        assert report.worst_scenario is None
        assert report.cover2 == 0.0
