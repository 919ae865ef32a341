"""Run a backtest: margins vs realised losses over the MPOR, and their statistics."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import numpy as np
from numpy.typing import NDArray

from monitor.backtest._inputs import PortfolioBook, PriceHistory
from monitor.backtest._margins import BacktestConfig, MarginPath, margin_path, row_volatility
from monitor.errors import InputError
from monitor.models import ModelTable
from monitor.risk import (
    ChristoffersenTest,
    KupiecTest,
    TrafficLight,
    christoffersen,
    es_ratio,
    kupiec,
    recalibration_scale,
    traffic_light,
    transition_counts,
)

__all__ = ["BacktestReport", "BacktestRun", "Coverage", "EsBacktest", "run_backtest"]


class EsBacktest(msgspec.Struct, frozen=True, kw_only=True):
    """Days the loss exceeded VaR, and the mean loss on them over the mean ES forecast."""

    exceptions: int
    ratio: float | None


class Coverage(msgspec.Struct, frozen=True, kw_only=True):
    """The backtest figures of one portfolio (``name``), or of all pooled (``overall``)."""

    name: str
    observations: int
    exceedances: int
    expected_exceedances: float
    kupiec: KupiecTest
    christoffersen: ChristoffersenTest
    traffic_light: TrafficLight
    recalibration_scale: float | None
    es_backtest: EsBacktest | None
    ewma_vol_last: dict[str, float]


class BacktestReport(msgspec.Struct, frozen=True, kw_only=True):
    """Everything ``liqmon backtest --json`` prints."""

    model: str
    confidence: float
    mpor_days: int
    first_day: str
    last_day: str
    settle_asset: str
    parameters: BacktestConfig
    portfolios: tuple[Coverage, ...]
    overall: Coverage


class BacktestRun(msgspec.Struct, frozen=True):
    """The report and the day-by-day series behind it (for plots): ``margin`` and
    ``loss`` are portfolios x days, ``volatility`` days x symbols (annualised EWMA)."""

    report: BacktestReport
    dates: tuple[str, ...]
    margin: NDArray[np.float64]
    loss: NDArray[np.float64]
    volatility: NDArray[np.float64]
    symbols: tuple[str, ...]
    names: tuple[str, ...]


def run_backtest(
    history: PriceHistory,
    book: PortfolioBook,
    config: BacktestConfig,
    progress: Callable[[int], None] | None = None,
) -> BacktestRun:
    """Backtest ``config.model`` on every day of ``history`` from ``config.first_day()``
    to the last day whose MPOR ends inside the history."""
    columns = [history.symbols.index(i.symbol) for i in book.instruments]
    prices = history.prices[:, columns]
    h = config.mpor_days
    first, last = config.first_day(), prices.shape[0] - 1 - h
    if last < first:
        raise InputError(
            f"the price history has {prices.shape[0]} days; model {config.model} with a "
            f"{config.window}-day window, {config.warmup} warm-up returns and a {h}-day MPOR "
            f"needs at least {first + h + 1}"
        )
    days = np.arange(first, last + 1, dtype=np.intp)
    table = ModelTable.from_instruments(book.instruments)
    path = margin_path(config, table, prices, book.qty, days, progress)
    size = table.contract_size
    loss = -(book.qty @ ((prices[days + h] - prices[days]) * size).T)
    vol = row_volatility(np.log(prices), config.lam, config.warmup) * np.sqrt(
        config.periods_per_year
    )
    vol_last = {i.symbol: float(vol[-1, j]) for j, i in enumerate(book.instruments)}
    rate = 1.0 - config.confidence
    per_portfolio = []
    for p, name in enumerate(book.names):
        held = {
            i.symbol: vol_last[i.symbol] for j, i in enumerate(book.instruments) if book.qty[p, j]
        }
        per_portfolio.append(_coverage(name, loss[p : p + 1], path, slice(p, p + 1), rate, held))
    report = BacktestReport(
        model=config.model,
        confidence=config.confidence,
        mpor_days=h,
        first_day=history.dates[first],
        last_day=history.dates[last],
        settle_asset=book.instruments[0].settle_asset,
        parameters=config,
        portfolios=tuple(per_portfolio),
        overall=_coverage("overall", loss, path, slice(None), rate, vol_last),
    )
    return BacktestRun(
        report=report,
        dates=tuple(history.dates[t] for t in days),
        margin=path.margin,
        loss=loss,
        volatility=vol[days],
        symbols=tuple(i.symbol for i in book.instruments),
        names=book.names,
    )


def _coverage(
    name: str,
    loss: NDArray[np.float64],
    path: MarginPath,
    rows: slice,
    rate: float,
    vol_last: dict[str, float],
) -> Coverage:
    """Pooled figures of the portfolios ``rows`` (their days concatenated; Christoffersen's
    transitions counted within each portfolio, then summed)."""
    margin = path.margin[rows]
    hits = loss > margin
    n, x = hits.size, int(np.count_nonzero(hits))
    counts = np.sum([transition_counts(row) for row in hits], axis=0)
    transitions = (int(counts[0]), int(counts[1]), int(counts[2]), int(counts[3]))
    es_test = None
    if path.value_at_risk is not None and path.expected_shortfall is not None:
        exceptions, ratio = es_ratio(
            loss.ravel(), path.value_at_risk[rows].ravel(), path.expected_shortfall[rows].ravel()
        )
        es_test = EsBacktest(exceptions=exceptions, ratio=ratio)
    return Coverage(
        name=name,
        observations=n,
        exceedances=x,
        expected_exceedances=round(n * rate, 9),
        kupiec=kupiec(n, x, rate),
        christoffersen=christoffersen(transitions, n, x, rate),
        traffic_light=traffic_light(n, x, rate),
        recalibration_scale=recalibration_scale(loss.ravel(), margin.ravel(), rate),
        es_backtest=es_test,
        ewma_vol_last=vol_last,
    )
