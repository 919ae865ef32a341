"""Model ``var_es`` for ``liqmon evaluate``: VaR and ES of accounts from a price history.

``IM = ES at confidence c (default 97.5 %) over the margin period of risk``, ``MM =
mm_factor x IM``; beside it, VaR and ES at 99 % and 97.5 % under three scenario sets of
joint returns of the underlyings (``monitor.risk``): historical (the last ``window``
overlapping MPOR returns, applied jointly so correlation is kept), filtered historical
(each return times ``vol_now / vol_then``, EWMA; Barone-Adesi et al. 1999, as Eurex Prisma)
and Monte Carlo (EWMA covariance, Student-t innovations, seeded, and a lognormal move of
each underlying's implied volatility per path, correlated with its return). ES at 97.5 % is the
measure of the Basel FRTB (BCBS, *Minimum capital requirements for market risk*, 2019,
MAR33) and of Eurex Prisma.

Each scenario moves every instrument of an underlying group (``monitor.engine.GroupLayout``:
a future by its own symbol, options by their underlying) by that underlying's return; the
value change of one contract of each instrument is computed once by the scenario engine
(``monitor.scenarios.value_changes``: linear and inverse arithmetic, options fully revalued
by Black-76 at the moved underlying, volatility held at the mark in the historical sets and
moved by the path's vol move in Monte Carlo), and an account's P&L per
scenario is its quantities times those changes. Collateral values are held still.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from monitor.engine import Engine, GroupLayout
from monitor.errors import InputError
from monitor.risk import (
    ewma_covariance,
    ewma_variance,
    filtered_historical_returns,
    historical_returns,
    monte_carlo_returns,
    monte_carlo_vol_moves,
    var_es_of_positions,
)
from monitor.scenarios import VOL_SAME, ScenarioSet, value_changes
from monitor.schema import (
    EvaluateRequest,
    PortfolioMarginParams,
    ScenarioSetName,
    ScenarioSetRisk,
    VarEsRequest,
    VarEsRisk,
)

__all__ = ["SCENARIO_SETS", "scenario_returns", "var_es_figures"]

SCENARIO_SETS: tuple[ScenarioSetName, ...] = ("historical", "filtered", "monte_carlo")
_PARAMS = PortfolioMarginParams()


def _check(spec: VarEsRequest, layout: GroupLayout, held: set[str]) -> NDArray[np.float64]:
    """The history as log prices (periods x groups, in ``layout`` order)."""
    where = "$.var_es"
    checks = (
        (0.0 < spec.confidence < 1.0, "confidence", "must be in (0, 1)"),
        (spec.mm_factor > 0.0, "mm_factor", "must be > 0"),
        (spec.mpor >= 1, "mpor", "must be at least 1 period"),
        (0.0 < spec.ewma_lambda < 1.0, "ewma_lambda", "must be in (0, 1)"),
        (spec.ewma_warmup >= 2, "ewma_warmup", "must be at least 2"),
        (spec.paths >= 1, "paths", "must be at least 1"),
        (spec.dof > 2.0, "dof", "must be > 2"),
        (0.0 <= spec.vol_of_vol < 10.0, "vol_of_vol", "must be in [0, 10)"),
        (-1.0 <= spec.vol_correlation <= 1.0, "vol_correlation", "must be in [-1, 1]"),
    )
    for ok, field, problem in checks:
        if not ok:
            raise InputError(f"{where}.{field}: {problem}")
    for name in spec.history:
        if name not in layout.index:
            raise InputError(
                f"{where}.history.{name}: no such underlying; name a future or an option "
                f"underlying ({', '.join(layout.names)})"
            )
    missing = sorted(held - spec.history.keys())
    if missing:
        raise InputError(
            f"{where}.history: no closes for {', '.join(missing)}, which positions hold"
        )
    lengths = {len(closes) for closes in spec.history.values()}
    if len(lengths) > 1:
        raise InputError(f"{where}.history: every underlying needs the same number of closes")
    periods = lengths.pop() if lengths else 0
    prices = np.ones((periods, layout.size))
    for name, closes in spec.history.items():
        column = np.asarray(closes, dtype=np.float64)
        if not np.all(np.isfinite(column) & (column > 0)):
            raise InputError(f"{where}.history.{name}: closes must be finite numbers > 0")
        prices[:, layout.index[name]] = column
    return np.log(prices)


def _window(spec: VarEsRequest, periods: int) -> int:
    most = periods - spec.ewma_warmup - spec.mpor
    window = most if spec.window is None else spec.window
    if window < 1 or window > most:
        raise InputError(
            f"$.var_es.window: {window} scenarios need {window + spec.ewma_warmup + spec.mpor} "
            f"closes (EWMA warm-up {spec.ewma_warmup} + MPOR {spec.mpor}); the history has "
            f"{periods}"
        )
    return window


def scenario_returns(
    spec: VarEsRequest, log_prices: NDArray[np.float64]
) -> dict[ScenarioSetName, tuple[NDArray[np.float64], NDArray[np.float64] | None]]:
    """Joint MPOR log returns (scenarios x groups) of each scenario set, and for Monte
    Carlo each path's log move of every group's implied volatility (None: held)."""
    periods = log_prices.shape[0]
    window, h = _window(spec, periods), spec.mpor
    one_period = np.diff(log_prices, axis=0)
    historical = historical_returns(log_prices, h, window)
    # vol[i]: the EWMA forecast standing at close i (NaN while warming up).
    vol = np.full(log_prices.shape, np.nan)
    vol[1:] = np.sqrt(ewma_variance(one_period, spec.ewma_lambda, spec.ewma_warmup))
    ends = np.arange(periods - window, periods)
    filtered = filtered_historical_returns(historical, vol[ends - h], vol[periods - 1])
    covariance = ewma_covariance(one_period, spec.ewma_lambda, spec.ewma_warmup)[-1]
    rng = np.random.default_rng(spec.seed)
    monte_carlo = monte_carlo_returns(covariance, spec.paths, rng, spec.dof, h)
    vol_moves = monte_carlo_vol_moves(
        monte_carlo, covariance, rng, spec.vol_of_vol, spec.vol_correlation, h
    )
    return {
        "historical": (historical, None),
        "filtered": (filtered, None),
        "monte_carlo": (monte_carlo, vol_moves),
    }


def _value_changes(
    engine: Engine,
    layout: GroupLayout,
    returns: NDArray[np.float64],
    vol_moves: NDArray[np.float64] | None,
) -> NDArray[np.float64]:
    """Instruments x scenarios: each contract's value change, by the scenario engine;
    options at the moved volatility where ``vol_moves`` is given (else at the mark's)."""
    n = len(engine.book.symbols)
    change = np.zeros((n, returns.shape[0]))
    vol_same = np.full(returns.shape[0], VOL_SAME, dtype=np.int8)
    weight = np.ones(returns.shape[0])
    for group in range(layout.size):
        members = layout.members[group]
        vol_move = None if vol_moves is None else vol_moves[:, group]
        scenarios = ScenarioSet(np.expm1(returns[:, group]), vol_same, weight, vol_move)
        change[members] = value_changes(layout.terms(engine.book, group), scenarios, _PARAMS)
    return change


def var_es_figures(engine: Engine, request: EvaluateRequest, spec: VarEsRequest) -> list[VarEsRisk]:
    """The ``var_es`` figures of every account of ``request`` (loaded in ``engine``)."""
    book = engine.book
    layout = GroupLayout(book, {})
    qty = np.zeros((len(request.accounts), len(book.symbols)))
    for a, account in enumerate(request.accounts):
        for position in account.positions:
            qty[a, book.instrument_index[position.symbol]] = position.qty
    held = {layout.names[int(layout.group_of[ix])] for ix in np.flatnonzero(qty.any(axis=0))}
    log_prices = _check(spec, layout, held)
    per_set: dict[ScenarioSetName, list[NDArray[np.float64]]] = {}
    sizes: dict[ScenarioSetName, int] = {}
    for name, (returns, vol_moves) in scenario_returns(spec, log_prices).items():
        change = _value_changes(engine, layout, returns, vol_moves)
        sizes[name] = returns.shape[0]
        per_set[name] = [
            *var_es_of_positions(qty, change, 0.99),
            *var_es_of_positions(qty, change, 0.975),
            var_es_of_positions(qty, change, spec.confidence)[1],
        ]
    results = []
    for a in range(len(request.accounts)):
        sets = tuple(
            ScenarioSetRisk(
                scenario_set=name,
                scenarios=sizes[name],
                seed=spec.seed if name == "monte_carlo" else None,
                var_99=float(figures[0][a]),
                es_99=float(figures[1][a]),
                var_975=float(figures[2][a]),
                es_975=float(figures[3][a]),
            )
            for name, figures in per_set.items()
        )
        initial = max(0.0, float(per_set[spec.model_set][4][a]))
        results.append(
            VarEsRisk(
                initial_margin=initial,
                maintenance_margin=spec.mm_factor * initial,
                confidence=spec.confidence,
                mpor=spec.mpor,
                model_set=spec.model_set,
                sets=sets,
            )
        )
    return results
