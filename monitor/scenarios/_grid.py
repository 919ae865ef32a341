"""Risk-matrix scenario sets: (price move, volatility case) pairs with a weight each.

The regular grid is ``price_steps`` evenly spaced price moves from ``-price_range`` to
``+price_range`` (including 0), each with the volatility up, unchanged and down; the
extended table adds ``extreme_moves`` with the volatility up only, each loss counted at
``extreme_fraction``. Sources: Deribit, "Portfolio Margin" (knowledge base, risk matrix
with price moves of +/-16 % in evenly spaced buckets, vol up / same / down, an extended
table of extreme moves and contingencies); CME Group, "CME SPAN: Standard Portfolio
Analysis of Risk" (16 scenarios: fractions of the scan range with vol up and down, and
two extreme moves of which a fraction of the loss counts).

Shocked volatility (Deribit's published shape), ``days`` the time to expiry in days
floored at 1::

    iv_up   = iv x (1 + vol_up   x (30 / days) ^ p)
    iv_down = iv x (1 - vol_down x (30 / days) ^ p),   p = vol_power_short (days <= 30)
                                                          vol_power_long  (days > 30)

both floored at ``min_iv``.
"""

from __future__ import annotations

import math
from typing import Final, NamedTuple

import numpy as np
from numpy.typing import NDArray

from monitor.schema import PortfolioMarginParams

__all__ = [
    "VOL_CASES",
    "VOL_DOWN",
    "VOL_SAME",
    "VOL_UP",
    "ScenarioSet",
    "params_problem",
    "risk_matrix_scenarios",
    "shocked_vols",
]

VOL_UP: Final = 0
VOL_SAME: Final = 1
VOL_DOWN: Final = 2
VOL_CASES: Final = ("up", "same", "down")
_DAYS_PER_YEAR: Final = 365.0


class ScenarioSet(NamedTuple):
    """Scenarios of one underlying group, in order: the regular grid (price-major, vol
    up/same/down for each move), then the extended table."""

    price_move: NDArray[np.float64]  # fraction of the price: -0.16 = 16 % down
    vol_case: NDArray[np.int8]  # VOL_UP, VOL_SAME or VOL_DOWN
    weight: NDArray[np.float64]  # 1, or extreme_fraction for the extended table
    # A volatility move per scenario instead of ``vol_case``: options are revalued at
    # ``vol x exp(vol_move)`` (Monte Carlo paths, ``monitor.risk.monte_carlo_vol_moves``).
    vol_move: NDArray[np.float64] | None = None

    @property
    def size(self) -> int:
        return int(self.price_move.shape[0])


def params_problem(params: PortfolioMarginParams) -> str | None:
    """What is wrong with ``params`` as one line (field: problem), or None."""
    fractions = (
        "price_range",
        "vol_up",
        "vol_down",
        "vol_power_short",
        "vol_power_long",
        "min_iv",
        "extreme_fraction",
        "futures_contingency",
        "option_contingency",
        "hybrid_floor",
    )
    for name in fractions:
        value = getattr(params, name)
        if not (math.isfinite(value) and value >= 0.0):
            return f"{name}: {value!r} must be a finite number >= 0"
    if not 0.0 < params.price_range < 1.0:
        return f"price_range: {params.price_range!r} must be in (0, 1)"
    if params.vol_down >= 1.0:
        return f"vol_down: {params.vol_down!r} must be below 1 (a volatility stays positive)"
    if params.price_steps < 2:
        return f"price_steps: {params.price_steps!r} must be at least 2"
    if params.price_steps % 2 == 0:
        return f"price_steps: {params.price_steps!r} must be odd so the grid includes 0"
    if not (math.isfinite(params.im_factor) and params.im_factor >= 1.0):
        return f"im_factor: {params.im_factor!r} must be a finite number >= 1"
    for move in params.extreme_moves:
        if not (math.isfinite(move) and move > -1.0):
            return f"extreme_moves: {move!r} must be a finite fraction > -1"
    return None


def risk_matrix_scenarios(params: PortfolioMarginParams) -> ScenarioSet:
    """The regular grid times vol up/same/down, then the extended table (vol up)."""
    moves = np.linspace(-params.price_range, params.price_range, params.price_steps)
    moves[params.price_steps // 2] = 0.0  # exactly 0, whatever the rounding of linspace
    regular_moves = np.repeat(moves, 3)
    regular_cases = np.tile(np.array([VOL_UP, VOL_SAME, VOL_DOWN], dtype=np.int8), moves.size)
    extreme = np.asarray(params.extreme_moves, dtype=np.float64)
    return ScenarioSet(
        price_move=np.concatenate((regular_moves, extreme)),
        vol_case=np.concatenate((regular_cases, np.full(extreme.size, VOL_UP, dtype=np.int8))),
        weight=np.concatenate(
            (np.ones(regular_moves.size), np.full(extreme.size, params.extreme_fraction))
        ),
    )


def shocked_vols(
    vol: NDArray[np.float64],
    years: NDArray[np.float64],
    vol_case: NDArray[np.int8],
    params: PortfolioMarginParams,
) -> NDArray[np.float64]:
    """Volatility per instrument (rows) and scenario (columns) after the scenario's shock.

    ``vol`` and ``years`` are per instrument; ``vol_case`` per scenario. Unchanged
    volatility is left as it is (not floored): the unchanged case revalues at the mark.
    """
    days = np.maximum(years * _DAYS_PER_YEAR, 1.0)
    power = np.where(days <= 30.0, params.vol_power_short, params.vol_power_long)
    term = (30.0 / days) ** power
    up = np.maximum(vol * (1.0 + params.vol_up * term), params.min_iv)
    down = np.maximum(vol * (1.0 - params.vol_down * term), params.min_iv)
    table = np.stack((up, vol, down), axis=1)  # instruments x 3 cases
    result: NDArray[np.float64] = table[:, vol_case.astype(np.intp)]
    return result
