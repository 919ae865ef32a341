"""Scenario sets of joint returns, and their value changes and P&L.

Every risk-based requirement is the same computation with different scenario sets
(DESIGN.md, "One scenario engine"): a matrix of joint log returns (scenarios x
underlyings), turned into a value change per instrument and scenario once, then into each
account's P&L per scenario by one sparse product (``monitor.scenarios.scenario_pnl``, the
product every risk-based model shares; re-exported here). The sets here:

* historical: the last N returns over the margin period of risk, applied jointly so
  correlation is kept;
* filtered historical: each return rescaled by ``vol_now / vol_then`` (EWMA), after
  Barone-Adesi, Giannopoulos and Vosper, "VaR without correlations for portfolios of
  derivative securities", *Journal of Futures Markets* 19 (1999) — the method of Eurex
  Prisma;
* Monte Carlo: joint returns from an EWMA covariance with multivariate Student-t
  innovations scaled to unit variance, seeded; and per path a move of each underlying's
  implied volatility, lognormal and correlated with the path's return (the spot-vol
  correlation), so options are revalued at the path's end price and volatility.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from monitor.scenarios import PositionMatrix, scenario_pnl

__all__ = [
    "PositionMatrix",
    "filtered_historical_returns",
    "historical_returns",
    "linear_value_change",
    "monte_carlo_returns",
    "monte_carlo_vol_moves",
    "scenario_pnl",
]


def historical_returns(
    log_prices: NDArray[np.float64], horizon: int, window: int
) -> NDArray[np.float64]:
    """The last ``window`` overlapping ``horizon``-period log returns of every series.

    ``log_prices`` is (periods, series), oldest first; row ``s`` of the result is the
    return over ``(t_s - horizon, t_s]`` where ``t_s`` runs over the last ``window``
    periods, oldest first. Raises ValueError when the history is shorter than
    ``window + horizon`` periods.
    """
    periods = log_prices.shape[0]
    if periods < window + horizon:
        raise ValueError(f"historical scenarios need {window + horizon} prices, have {periods}")
    end = log_prices[periods - window :]
    start = log_prices[periods - window - horizon : periods - horizon]
    return np.asarray(end - start, dtype=np.float64)


def filtered_historical_returns(
    returns: NDArray[np.float64],
    vol_then: NDArray[np.float64],
    vol_now: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Historical returns (scenarios x series) rescaled to today's volatility:
    ``r * vol_now / vol_then``, with ``vol_then`` the EWMA forecast standing when each
    return began (scenarios x series) and ``vol_now`` today's forecast (series). Where
    ``vol_then`` is 0 (a price that had not moved), the return is left as it was."""
    ratio = np.divide(
        vol_now,
        vol_then,
        out=np.ones(np.broadcast_shapes(np.shape(vol_now), vol_then.shape)),
        where=vol_then > 0,
    )
    return np.asarray(returns * ratio, dtype=np.float64)


def monte_carlo_returns(
    covariance: NDArray[np.float64],
    paths: int,
    rng: np.random.Generator,
    dof: float = 5.0,
    horizon: int = 1,
) -> NDArray[np.float64]:
    """``paths`` joint log returns over ``horizon`` periods (paths x series).

    ``r = sqrt(horizon) * L z * sqrt((dof - 2) / W)``, with ``L L' = covariance`` (per
    period), ``z`` standard normal and one ``W ~ chi2(dof)`` per path: a multivariate
    Student-t with ``covariance`` as its covariance (the factor makes the variance
    exact) and tail dependence between series. ``dof = inf`` gives the normal. Horizon
    scaling is the square-root-of-time rule. The same ``rng`` state gives the same paths.
    """
    cov = np.atleast_2d(np.asarray(covariance, dtype=np.float64))
    series = cov.shape[0]
    # Cholesky of a covariance that may be singular (perfectly correlated series): the
    # eigen-decomposition square root works for any positive semi-definite matrix.
    values, vectors = np.linalg.eigh(cov)
    root = vectors * np.sqrt(np.clip(values, 0.0, None))
    z = rng.standard_normal((paths, series))
    r: NDArray[np.float64] = z @ root.T
    if np.isfinite(dof):
        if dof <= 2.0:
            raise ValueError(f"Student-t degrees of freedom must be > 2, got {dof}")
        w = rng.chisquare(dof, size=paths)
        r *= np.sqrt((dof - 2.0) / w)[:, None]
    if horizon != 1:
        r *= np.sqrt(horizon)
    return r


def monte_carlo_vol_moves(
    returns: NDArray[np.float64],
    covariance: NDArray[np.float64],
    rng: np.random.Generator,
    vol_of_vol: float,
    correlation: float,
    horizon: int = 1,
) -> NDArray[np.float64]:
    """Log moves of each underlying's implied volatility per path (paths x series), to go
    with the Monte Carlo ``returns`` drawn from ``covariance`` over ``horizon`` periods.

    ``log(vol_end / vol_now) = vol_of_vol x sqrt(horizon) x (rho u + sqrt(1 - rho^2) e)``,
    with ``u`` the path's return of the series standardised by its own deviation
    (``sqrt(horizon x variance)``), ``e`` independent standard normal draws from ``rng``
    (taken after the returns', so adding vol moves leaves the returns as they were) and
    ``rho = correlation``: the spot-vol correlation, negative where falls raise implied
    volatility (the leverage effect; Black 1976, "Studies of stock price volatility
    changes"). The move is lognormal, so a volatility stays positive. ``vol_of_vol`` is the
    deviation of the log volatility per period (0 holds it at the mark).
    """
    if not (np.isfinite(vol_of_vol) and vol_of_vol >= 0.0):
        raise ValueError(f"vol_of_vol must be a finite number >= 0, got {vol_of_vol}")
    if not -1.0 <= correlation <= 1.0:
        raise ValueError(f"the spot-vol correlation must be in [-1, 1], got {correlation}")
    cov = np.atleast_2d(np.asarray(covariance, dtype=np.float64))
    deviation = np.sqrt(np.diag(cov) * horizon)
    u = np.divide(returns, deviation, out=np.zeros_like(returns), where=deviation > 0)
    e = rng.standard_normal(returns.shape)
    mixed = correlation * u + np.sqrt(1.0 - correlation * correlation) * e
    moves: NDArray[np.float64] = vol_of_vol * np.sqrt(horizon) * mixed
    return moves


def linear_value_change(
    returns: NDArray[np.float64],
    price: NDArray[np.float64],
    contract_size: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Value change of one contract of each linear instrument per scenario
    (instruments x scenarios): ``contract_size x price x (exp(r) - 1)``, from log
    returns ``returns`` (scenarios x instruments) of its underlying and today's price."""
    change = np.expm1(returns.T) * (contract_size * price)[:, None]
    return np.ascontiguousarray(change, dtype=np.float64)
