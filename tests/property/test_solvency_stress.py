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
    AccountRisk,
    EvaluateAccount,
    EvaluatePosition,
    EvaluateRequest,
    Instrument,
    OptionStandardMargin,
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
        isolated = draw(st.booleans())
        positions = tuple(
            EvaluatePosition(
                symbol=s,
                qty=draw(st.sampled_from((-1, 1))) * draw(st.floats(0.01, 50.0)),
                entry_price=PRICES[s] * draw(st.floats(0.8, 1.2)),
                margin=draw(st.floats(0.0, 200_000.0)) if isolated else None,
            )
            for s in symbols
        )
        found.append(
            EvaluateAccount(
                account=f"a{k}",
                mode="isolated" if isolated else "cross",
                collateral={"USDT": draw(st.floats(0.0, 500_000.0))},
                positions=positions,
            )
        )
    return tuple(found)


def _unit_equities(risk: AccountRisk, account: EvaluateAccount) -> list[tuple[float, float]]:
    """(equity, magnitude) of each margin unit: the account for a cross account; each
    position (its margin plus its PnL) and the wallet for an isolated one."""
    if account.mode == "cross":
        scale = abs(risk.collateral_value) + sum(abs(p.unrealized_pnl) for p in risk.positions)
        return [(risk.equity, scale)]
    margin = {p.symbol: p.margin or 0.0 for p in account.positions}
    wallet = sum(account.collateral.values())
    return [(wallet, abs(wallet))] + [
        (margin[p.symbol] + p.unrealized_pnl, margin[p.symbol] + abs(p.unrealized_pnl))
        for p in risk.positions
    ]


def _debt(risk: AccountRisk, account: EvaluateAccount) -> float:
    return sum(max(0.0, -equity) for equity, _ in _unit_equities(risk, account))


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
        debts = {r.account: _debt(r, a) for r, a in zip(risks, book, strict=True)}
        expected = sum(debts.values())
        totals.append(expected)
        scale = sum(
            abs(r.collateral_value) + sum(abs(p.unrealized_pnl) for p in r.positions) for r in risks
        )
        assert math.isclose(result.bad_debt, expected, rel_tol=1e-9, abs_tol=1e-9 * (1 + scale))
        split = sum(result.bad_debt_by_underlying.values())
        assert math.isclose(split, result.bad_debt, rel_tol=1e-9, abs_tol=1e-9 * (1 + scale))
        state = {r.account: r.state for r in risks}
        # Every account the stress calls bankrupt is bankrupt in the engine at those prices,
        # and every account clearly below zero is called bankrupt.
        assert all(state[a] == "bankrupt" for a in result.bankrupt)
        clear = {
            r.account
            for r, a in zip(risks, book, strict=True)
            if any(equity < -1e-6 * scale for equity, scale in _unit_equities(r, a))
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
        debts_sorted = sorted(
            (_debt(r, a) for r, a in zip(evaluate(shocked), book, strict=True)), reverse=True
        )
        assert math.isclose(report.cover2, sum(debts_sorted[:2]), rel_tol=1e-9, abs_tol=1e-6)
    else:
        assert report.worst_scenario is None
        assert report.cover2 == 0.0


# ------------------------------------------------------------------ options, vol shocked

NOW = "2026-12-02T08:00:00Z"
EXPIRY = "2026-12-30T08:00:00Z"  # 28 days: Deribit's short-dated volatility power applies
DAYS = 28.0
OPTION_INSTRUMENTS = (
    _linear("BTC-USD", "BTC"),
    *(
        Instrument(
            symbol=f"BTC-{kind[0].upper()}-{strike}",
            kind="option",
            quote="USDT",
            base="BTC",
            underlying="BTC-USD",
            strike=float(strike),
            expiry=EXPIRY,
            option_type=kind,
            margin=OptionStandardMargin(),
        )
        for kind in ("call", "put")
        for strike in (80_000, 100_000, 120_000)
    ),
)
UNDERLYING = 100_000.0
VOLS = {i.symbol: 0.4 + 0.05 * k for k, i in enumerate(OPTION_INSTRUMENTS[1:])}


def _shocked_vol(vol: float, case: str) -> float:
    """Deribit's shocked volatility, written out here: iv x (1 +/- shock x (30/days)^p)."""
    params = PortfolioMarginParams()
    term = (30.0 / DAYS) ** params.vol_power_short
    if case == "up":
        return max(vol * (1.0 + params.vol_up * term), params.min_iv)
    if case == "down":
        return max(vol * (1.0 - params.vol_down * term), params.min_iv)
    return vol


@st.composite
def option_books(draw: st.DrawFn) -> tuple[EvaluateAccount, ...]:
    found = []
    symbols = [i.symbol for i in OPTION_INSTRUMENTS]
    for k in range(draw(st.integers(1, 8))):
        held = draw(st.lists(st.sampled_from(symbols), min_size=1, max_size=4, unique=True))
        positions = tuple(
            EvaluatePosition(
                symbol=s,
                qty=draw(st.sampled_from((-1, 1))) * draw(st.floats(0.1, 20.0)),
                entry_price=UNDERLYING if s == "BTC-USD" else draw(st.floats(100.0, 30_000.0)),
            )
            for s in held
        )
        found.append(
            EvaluateAccount(
                account=f"o{k}",
                collateral={"USDT": draw(st.floats(0.0, 300_000.0))},
                positions=positions,
            )
        )
    return tuple(found)


@settings(max_examples=40, deadline=None)
@given(
    option_books(),
    st.lists(
        st.tuples(st.floats(-0.8, 1.0), st.sampled_from(("up", "same", "down"))),
        min_size=1,
        max_size=4,
    ),
)
def test_option_stress_equals_brute_force_at_shocked_prices_and_vols(
    book: tuple[EvaluateAccount, ...], shocks: list[tuple[float, str]]
) -> None:
    request = EvaluateRequest(
        instruments=OPTION_INSTRUMENTS,
        prices={"BTC-USD": UNDERLYING},
        vols=VOLS,
        now=NOW,
        accounts=book,
    )
    stresses = [
        StressScenario(name=f"s{k}", moves={"BTC": move}, vol=case)  # type: ignore[arg-type]
        for k, (move, case) in enumerate(shocks)
    ]
    report = stress_report(
        book_state(load_request(request)), stresses, PortfolioMarginParams(), fund=0.0, ts=0
    )
    for (move, case), result in zip(shocks, report.scenarios, strict=True):
        shocked = msgspec.structs.replace(
            request,
            prices={"BTC-USD": UNDERLYING * (1.0 + move)},
            vols={s: _shocked_vol(v, case) for s, v in VOLS.items()},
        )
        risks = evaluate(shocked)
        expected = sum(max(0.0, -r.equity) for r in risks)
        scale = sum(
            abs(r.collateral_value) + sum(abs(p.unrealized_pnl) for p in r.positions) for r in risks
        )
        assert math.isclose(result.bad_debt, expected, rel_tol=1e-7, abs_tol=1e-7 * (1 + scale))
        state = {r.account: r.state for r in risks}
        assert all(state[a] == "bankrupt" for a in result.bankrupt)


def test_a_rounding_loss_on_an_empty_wallet_is_not_a_bankruptcy() -> None:
    # Found by hypothesis: a short future at its mark, 5e-324 of collateral, a move of
    # 1e-38. The scenario P&L (-1e-33) is rounding against a 100,000 notional.
    book = (
        EvaluateAccount(
            account="o0",
            collateral={"USDT": 5e-324},
            positions=(EvaluatePosition(symbol="BTC-USD", qty=-1.0, entry_price=UNDERLYING),),
        ),
    )
    request = EvaluateRequest(
        instruments=OPTION_INSTRUMENTS, prices={"BTC-USD": UNDERLYING}, vols=VOLS, now=NOW,
        accounts=book,
    )  # fmt: skip
    scenario = StressScenario(name="tiny", moves={"BTC": 1.0677806630602609e-38}, vol="up")
    report = stress_report(
        book_state(load_request(request)), [scenario], PortfolioMarginParams(), fund=0.0, ts=0
    )
    assert report.scenarios[0].bankrupt == ()
