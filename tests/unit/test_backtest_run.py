"""run_backtest: margins, realised losses and the statistics, checked independently."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.backtest import (
    BacktestConfig,
    PortfolioBook,
    PriceHistory,
    run_backtest,
)
from monitor.evaluate import evaluate
from monitor.schema import (
    EvaluateAccount,
    EvaluatePosition,
    EvaluateRequest,
    Instrument,
    RateCurve,
    SizeScaledMargin,
    Tier,
    TieredMargin,
)

pytestmark = pytest.mark.unit


def tiered(symbol: str, mmr: float, contract_size: float = 1.0) -> Instrument:
    tiers = (
        Tier(floor=0, cap=1e6, mmr=mmr, imr=2 * mmr),
        Tier(floor=1e6, cap=1e9, mmr=2 * mmr, imr=4 * mmr),
    )
    return Instrument(
        symbol=symbol,
        kind="linear",
        quote="USD",
        base=symbol,
        contract_size=contract_size,
        margin=TieredMargin(tiers=tiers),
    )


def size_scaled(symbol: str) -> Instrument:
    margin = SizeScaledMargin(
        im=RateCurve(base=0.05, slope=1e-4), mm=RateCurve(base=0.03, slope=1e-4)
    )
    return Instrument(symbol=symbol, kind="linear", quote="USD", base=symbol, margin=margin)


def fat_tailed_history(days: int, seed: int, vol: float = 0.02) -> PriceHistory:
    """Student-t(3) daily log returns with volatility clustering (two regimes)."""
    rng = np.random.default_rng(seed)
    regime = np.where((np.arange(days) // 150) % 2 == 0, vol, 2.5 * vol)
    shocks = rng.standard_t(3, size=(days, 2)) / math.sqrt(3.0)
    returns = shocks * regime[:, None]
    prices = 100.0 * np.exp(np.cumsum(returns, axis=0))
    dates = tuple(str(np.datetime64("2020-01-01") + k) for k in range(days))
    return PriceHistory(dates, ("A", "B"), prices)


def book(instruments: tuple[Instrument, ...], qty: list[list[float]]) -> PortfolioBook:
    names = tuple(f"p{k}" for k in range(len(qty)))
    return PortfolioBook(instruments, names, np.array(qty, dtype=np.float64))


QTY = [[3.0, 0.0], [0.0, -2.0], [5.0, -4.0]]


def test_instrument_margin_is_the_maintenance_margin_evaluate_reports() -> None:
    history = fat_tailed_history(400, seed=1)
    instruments = (tiered("A", 0.01, contract_size=1000.0), size_scaled("B"))
    config = BacktestConfig(window=50, warmup=10)
    run = run_backtest(history, book(instruments, QTY), config)
    for k in (0, 77, len(run.dates) - 1):
        t = history.dates.index(run.dates[k])
        prices = {"A": float(history.prices[t, 0]), "B": float(history.prices[t, 1])}
        accounts = tuple(
            EvaluateAccount(
                account=f"p{p}",
                collateral={"USD": 1e9},
                positions=tuple(
                    EvaluatePosition(symbol=s, qty=q, entry_price=prices[s])
                    for s, q in zip(("A", "B"), QTY[p], strict=True)
                    if q
                ),
            )
            for p in range(3)
        )
        request = EvaluateRequest(
            instruments=instruments, prices=prices, accounts=accounts, valuation_asset="USD"
        )
        for p, risk in enumerate(evaluate(request)):
            assert run.margin[p, k] == pytest.approx(risk.maintenance_margin, rel=1e-12)


def test_realised_loss_is_minus_the_pnl_over_the_mpor() -> None:
    history = fat_tailed_history(300, seed=2)
    instruments = (tiered("A", 0.01, contract_size=10.0), tiered("B", 0.01))
    config = BacktestConfig(mpor_days=3, window=40, warmup=10)
    run = run_backtest(history, book(instruments, QTY), config)
    first = config.first_day()
    assert run.dates[0] == history.dates[first]
    assert run.dates[-1] == history.dates[299 - 3]
    for k in (0, 100, len(run.dates) - 1):
        t = first + k
        for p, (qa, qb) in enumerate(QTY):
            pnl = qa * 10.0 * (history.prices[t + 3, 0] - history.prices[t, 0]) + qb * (
                history.prices[t + 3, 1] - history.prices[t, 1]
            )
            assert run.loss[p, k] == pytest.approx(-pnl, rel=1e-12, abs=1e-9)


def plain_es(losses: list[float], confidence: float) -> float:
    k = max(1, math.floor(len(losses) * (1 - confidence) + 1e-9))
    worst = sorted(losses, reverse=True)[:k]
    return sum(worst) / k


def test_historical_margin_is_the_es_of_the_last_window_of_returns() -> None:
    history = fat_tailed_history(200, seed=3)
    instruments = (tiered("A", 0.01), tiered("B", 0.01))
    config = BacktestConfig(model="var_hist", mpor_days=2, window=60, warmup=10, confidence=0.95)
    run = run_backtest(history, book(instruments, QTY), config)
    k = 25
    t = config.first_day() + k
    p = history.prices
    for row, (qa, qb) in enumerate(QTY):
        losses = []
        for s in range(t - 60 + 1, t + 1):
            ra, rb = math.log(p[s, 0] / p[s - 2, 0]), math.log(p[s, 1] / p[s - 2, 1])
            pnl = qa * p[t, 0] * (math.exp(ra) - 1) + qb * p[t, 1] * (math.exp(rb) - 1)
            losses.append(-pnl)
        assert run.margin[row, k] == pytest.approx(plain_es(losses, 0.95), rel=1e-10)


def test_monte_carlo_backtest_is_reproducible_from_its_seed() -> None:
    history = fat_tailed_history(160, seed=4)
    instruments = (tiered("A", 0.01), tiered("B", 0.01))
    config = BacktestConfig(model="var_mc", window=20, warmup=10, paths=2_000, seed=7)
    a = run_backtest(history, book(instruments, QTY), config)
    b = run_backtest(history, book(instruments, QTY), config)
    np.testing.assert_array_equal(a.margin, b.margin)
    assert a.report == b.report
    other = run_backtest(
        history, book(instruments, QTY), BacktestConfig(**{**_fields(config), "seed": 8})
    )
    assert not np.array_equal(a.margin, other.margin)


def _fields(config: BacktestConfig) -> dict[str, object]:
    return {f: getattr(config, f) for f in config.__struct_fields__}


def test_too_lenient_model_fails_kupiec_and_its_recalibrated_rates_pass() -> None:
    history = fat_tailed_history(1_300, seed=5)
    lenient = (tiered("A", 0.01), tiered("B", 0.01))  # 1 % MM against ~3 % daily moves
    qty = [[1.0, 0.0], [0.0, -1.0]]
    config = BacktestConfig(window=250, warmup=30)
    before = run_backtest(history, book(lenient, qty), config).report.overall
    assert before.exceedances > 3 * before.expected_exceedances
    assert before.kupiec.p_value < 0.01
    assert before.traffic_light == "red"
    scale = before.recalibration_scale
    assert scale is not None
    assert scale > 1
    # Scale every tier's rates (mmr, imr) by the suggested factor and run again.
    recalibrated = (tiered("A", 0.01 * scale), tiered("B", 0.01 * scale))
    after = run_backtest(history, book(recalibrated, qty), config).report.overall
    assert after.exceedances <= after.expected_exceedances
    assert after.kupiec.p_value > 0.05
    assert after.traffic_light == "green"
    assert after.recalibration_scale == pytest.approx(1.0, rel=1e-6)


def test_ewma_vol_last_is_annualised_and_per_held_underlying() -> None:
    history = fat_tailed_history(300, seed=6)
    instruments = (tiered("A", 0.01), tiered("B", 0.01))
    run = run_backtest(history, book(instruments, QTY), BacktestConfig(window=50, warmup=30))
    returns = np.diff(np.log(history.prices[:, 0]))
    s2 = returns[:30].var(ddof=1)
    for r in returns[30:]:
        s2 = 0.94 * s2 + 0.06 * r * r
    assert run.report.overall.ewma_vol_last["A"] == pytest.approx(math.sqrt(s2 * 252), rel=1e-10)
    assert set(run.report.portfolios[0].ewma_vol_last) == {"A"}
    assert set(run.report.portfolios[2].ewma_vol_last) == {"A", "B"}
