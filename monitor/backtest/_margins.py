"""Each model's margin at the start of every backtest day, from prices known by then.

* ``instrument``: the maintenance margin of the instruments' own models (tiered brackets,
  size-scaled rates), computed by :class:`monitor.models.ModelTable`, the code the engine
  runs (an account's MM is the sum over its positions).
* ``var_hist``, ``var_fhs``, ``var_mc``: ``IM = ES at the confidence over the MPOR`` of
  the portfolio's P&L under historical, filtered historical or Monte Carlo scenarios
  (:mod:`monitor.risk`); VaR is kept too for the ES backtest.

Day ``t`` means: margin set with the close of ``t`` known, loss realised from the close of
``t`` to the close of ``t + horizon``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import msgspec
import numpy as np
import scipy.sparse
from numpy.typing import NDArray

from monitor.errors import ConfigError
from monitor.models import ModelTable
from monitor.risk import (
    ewma_covariance,
    ewma_variance,
    filtered_historical_returns,
    historical_returns,
    linear_value_change,
    monte_carlo_returns,
    scenario_pnl,
    var_es,
)

__all__ = ["MODELS", "BacktestConfig", "MarginPath", "ModelName", "margin_path"]

ModelName = Literal["instrument", "var_hist", "var_fhs", "var_mc"]
MODELS: tuple[ModelName, ...] = ("instrument", "var_hist", "var_fhs", "var_mc")


class BacktestConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How to backtest: the model, the coverage target, the margin period of risk in
    days (rows of the history), the scenario window, the EWMA settings, and the Monte
    Carlo paths, Student-t degrees of freedom and seed."""

    model: ModelName = "instrument"
    confidence: float = 0.99
    mpor_days: int = 1
    window: int = 250
    lam: float = 0.94
    warmup: int = 30
    paths: int = 10_000
    dof: float = 5.0
    seed: int = 1
    periods_per_year: float = 252.0

    def __post_init__(self) -> None:
        checks = (
            (self.model in MODELS, f"model {self.model!r}: use one of {', '.join(MODELS)}"),
            (0.0 < self.confidence < 1.0, f"confidence {self.confidence} must be in (0, 1)"),
            (self.mpor_days >= 1, f"mpor {self.mpor_days} days must be at least 1"),
            (self.window >= 1, f"window {self.window} must be at least 1 scenario"),
            (0.0 < self.lam < 1.0, f"lambda {self.lam} must be in (0, 1)"),
            (self.warmup >= 2, f"warmup {self.warmup}: the EWMA needs at least 2 returns"),
            (self.paths >= 1, f"paths {self.paths} must be at least 1"),
            (self.dof > 2.0, f"dof {self.dof} must be greater than 2 (inf for normal paths)"),
            (self.periods_per_year > 0, "periods_per_year must be > 0"),
        )
        for ok, problem in checks:
            if not ok:
                raise ConfigError(f"backtest settings: {problem}")

    def first_day(self) -> int:
        """The first day every model can be judged on: a full scenario window whose
        oldest return already has an EWMA volatility. All models start there, so their
        results cover the same days."""
        return self.warmup + self.window + self.mpor_days - 1


class MarginPath(msgspec.Struct, frozen=True):
    """Per portfolio and day (portfolios x days): the margin, and for the VaR models the
    VaR and ES behind it (None for ``instrument``)."""

    margin: NDArray[np.float64]
    value_at_risk: NDArray[np.float64] | None
    expected_shortfall: NDArray[np.float64] | None


def row_volatility(log_prices: NDArray[np.float64], lam: float, warmup: int) -> NDArray[np.float64]:
    """Per-day EWMA volatility standing at each close (days x series): row ``i`` is the
    forecast made with the returns up to close ``i`` (NaN while warming up)."""
    variance = ewma_variance(np.diff(log_prices, axis=0), lam, warmup)
    vol = np.full(log_prices.shape, np.nan)
    vol[1:] = np.sqrt(variance)
    return vol


def margin_path(
    config: BacktestConfig,
    instruments: ModelTable,
    prices: NDArray[np.float64],
    qty: NDArray[np.float64],
    days: NDArray[np.intp],
    progress: Callable[[int], None] | None = None,
) -> MarginPath:
    """Margins of every portfolio (rows of ``qty``) on ``days`` (row indexes of
    ``prices``, days x instruments, columns in ``instruments`` order)."""
    if config.model == "instrument":
        margin = _maintenance(instruments, prices, qty, days)
        if progress is not None:
            progress(days.size)
        return MarginPath(margin, None, None)
    log_prices = np.log(prices)
    positions = scipy.sparse.csr_array(qty)
    size = instruments.contract_size
    shape = (qty.shape[0], days.size)
    value_at_risk, es = np.empty(shape), np.empty(shape)
    h = config.mpor_days
    vol = row_volatility(log_prices, config.lam, config.warmup)
    cov = ewma_covariance(np.diff(log_prices, axis=0), config.lam, config.warmup)
    for k, t in enumerate(days):
        if config.model == "var_mc":
            rng = np.random.default_rng([config.seed, int(t)])
            returns = monte_carlo_returns(cov[t - 1], config.paths, rng, config.dof, h)
        else:
            returns = historical_returns(log_prices[: t + 1], h, config.window)
            if config.model == "var_fhs":
                ends = np.arange(t - config.window + 1, t + 1)
                returns = filtered_historical_returns(returns, vol[ends - h], vol[t])
        change = linear_value_change(returns, prices[t], size)
        value_at_risk[:, k], es[:, k] = var_es(scenario_pnl(positions, change), config.confidence)
        if progress is not None:
            progress(1)
    return MarginPath(np.maximum(es, 0.0), value_at_risk, es)


def _maintenance(
    table: ModelTable, prices: NDArray[np.float64], qty: NDArray[np.float64], days: NDArray[np.intp]
) -> NDArray[np.float64]:
    """Sum over positions of the instruments' maintenance margin at each day's close,
    all (portfolio, instrument, day) positions in one vectorised call."""
    portfolio, instrument = np.nonzero(qty)
    n_days = days.size
    p = np.repeat(portfolio, n_days)
    i = np.repeat(instrument, n_days).astype(np.intp)
    d = np.tile(np.arange(n_days), portfolio.size)
    mark = prices[days[d], i]
    _, maintenance = table.requirements(i, qty[p, i], mark, np.full(i.size, np.nan))
    margin = np.zeros((qty.shape[0], n_days))
    np.add.at(margin, (p, d), maintenance)
    return margin
