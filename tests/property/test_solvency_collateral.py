"""Collateral that moves with an underlying: a crash of BTC also lowers BTC collateral.

The stress is checked against ``evaluate`` of each account at the shocked prices, where
the shocked prices include the collateral assets' own price ticks: BTC collateral priced
by a ``BTC`` tick, ETH collateral priced by the ``ETHUSDT`` instrument's tick, both with
a haircut, and a stablecoin that no scenario moves.
"""

from __future__ import annotations

import math

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.evaluate import evaluate, load_request
from monitor.schema import (
    CollateralAsset,
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

TIERS = (Tier(floor=0.0, cap=1e15, mmr=0.01, imr=0.02),)
INSTRUMENTS = tuple(
    Instrument(symbol=s, kind="linear", quote="USDT", base=b, margin=TieredMargin(tiers=TIERS))
    for s, b in (("BTCUSDT", "BTC"), ("ETHUSDT", "ETH"))
)
COLLATERAL = (
    CollateralAsset(asset="BTC", haircut=0.1),  # priced by the "BTC" tick
    CollateralAsset(asset="ETH", haircut=0.2, price_symbol="ETHUSDT"),
    CollateralAsset(asset="USDC", haircut=0.05),  # moves with nothing
)
PRICES = {"BTCUSDT": 30_000.0, "ETHUSDT": 2_000.0, "BTC": 30_000.0, "USDC": 1.0}
BASE_OF = {"BTCUSDT": "BTC", "ETHUSDT": "ETH", "BTC": "BTC", "USDC": None}


@st.composite
def accounts(draw: st.DrawFn) -> tuple[EvaluateAccount, ...]:
    found = []
    for k in range(draw(st.integers(1, 10))):
        symbols = draw(st.lists(st.sampled_from(("BTCUSDT", "ETHUSDT")), max_size=2, unique=True))
        found.append(
            EvaluateAccount(
                account=f"a{k}",
                collateral={
                    "USDT": draw(st.floats(-20_000.0, 50_000.0)),
                    "BTC": draw(st.floats(-1.0, 3.0)),  # negative: a debt, at full value
                    "ETH": draw(st.floats(0.0, 30.0)),
                    "USDC": draw(st.floats(0.0, 20_000.0)),
                },
                positions=tuple(
                    EvaluatePosition(
                        symbol=s,
                        qty=draw(st.sampled_from((-1, 1))) * draw(st.floats(0.01, 5.0)),
                        entry_price=PRICES[s] * draw(st.floats(0.8, 1.2)),
                    )
                    for s in symbols
                ),
            )
        )
    return tuple(found)


scenarios = st.lists(
    st.builds(
        lambda k, btc, other: StressScenario(
            name=f"s{k}", moves={"BTC": btc} if btc is not None else {}, default_move=other
        ),
        st.integers(0, 10_000),
        st.none() | st.floats(-0.95, 1.5),
        st.floats(-0.95, 1.5),
    ),
    min_size=1,
    max_size=4,
    unique_by=lambda s: s.name,
)


def _shocked(scenario: StressScenario) -> dict[str, float]:
    shocked = {}
    for symbol, price in PRICES.items():
        base = BASE_OF[symbol]
        move = 0.0 if base is None else scenario.moves.get(base, scenario.default_move)
        shocked[symbol] = price * (1.0 + move)
    return shocked


@settings(max_examples=60, deadline=None)
@given(accounts(), scenarios)
def test_collateral_moves_with_its_underlying_as_evaluate_values_it(
    book: tuple[EvaluateAccount, ...], stresses: list[StressScenario]
) -> None:
    request = EvaluateRequest(
        instruments=INSTRUMENTS, prices=PRICES, accounts=book, collateral_assets=COLLATERAL
    )
    report = stress_report(
        book_state(load_request(request)),
        stresses,
        PortfolioMarginParams(),
        fund=0.0,
        ts=0,
        report_accounts=len(book),
    )
    for scenario, result in zip(stresses, report.scenarios, strict=True):
        risks = evaluate(msgspec.structs.replace(request, prices=_shocked(scenario)))
        expected = sum(max(0.0, -r.equity) for r in risks)
        scale = sum(
            abs(r.collateral_value) + sum(abs(p.unrealized_pnl) for p in r.positions) + 1e5
            for r in risks
        )
        assert math.isclose(result.bad_debt, expected, rel_tol=1e-9, abs_tol=1e-9 * scale)
        state = {r.account: r.state for r in risks}
        assert all(state[a] == "bankrupt" for a in result.bankrupt)
        clear = {r.account for r in risks if r.equity < -1e-6 * scale}
        assert clear <= set(result.bankrupt)


def test_a_btc_crash_lowers_btc_collateral_after_its_haircut() -> None:
    # 1 BTC of collateral (haircut 10 %: 27,000) backs a 26,000 USDT debt; no positions.
    account = EvaluateAccount(account="a", collateral={"USDT": -26_000.0, "BTC": 1.0})
    request = EvaluateRequest(
        instruments=INSTRUMENTS, prices=PRICES, accounts=(account,), collateral_assets=COLLATERAL
    )
    crash = StressScenario(name="BTC -30%", moves={"BTC": -0.3})
    eth = StressScenario(name="ETH -30%", moves={"ETH": -0.3})
    report = stress_report(
        book_state(load_request(request)), [crash, eth], PortfolioMarginParams(), fund=0.0, ts=0
    )
    btc, other = report.scenarios
    # 27,000 x 0.7 = 18,900 of collateral against 26,000 owed: 7,100 of bad debt.
    assert math.isclose(btc.bad_debt, 7_100.0, rel_tol=1e-12)
    assert btc.bankrupt == ("a",)
    assert other.bad_debt == 0.0
