"""Every holder's risk-matrix figures in one pass: the fused kernel and its numpy reference.

:func:`monitor.scenarios.group_margin` takes about ten passes over a group's positions (a
sparse product to a dense holders x scenarios matrix, the weighting, the argmin, two more
sparse products and bincounts for the contingencies). A tick needs only each holder's
figures, not its risk matrix, so :func:`holder_figures` walks the holders' positions once
(compressed by holder: ``indptr``, ``col``) and, per holder, accumulates the P&L of every
scenario, the net futures delta and the net contracts per (expiry, strike) in registers
and a scratch row, then takes the weighted minimum and the contingencies. Same formulas
and sources as :mod:`monitor.scenarios._risk_matrix` (Deribit "Portfolio Margin", CME
SPAN); :func:`holder_figures_reference` computes them with that module's numpy path and
``tests/unit/test_scenarios_fused.py`` checks the two against each other.

Compiled on first use and cached on disk (``cache=True``), releasing the GIL
(``nogil=True``); ``monitor.engine.warm_up`` compiles it ahead. Without numba the reference
runs.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from monitor.compiled import HAVE_NUMBA, compiled
from monitor.scenarios._risk_matrix import GroupPositions, PricedGroup, group_margin

__all__ = ["HAVE_NUMBA", "HolderFigures", "holder_figures", "holder_figures_reference"]

Array = NDArray[np.float64]


class HolderFigures(NamedTuple):
    """Per holder (row of ``indptr``): the group's margin figures, no risk matrix."""

    loss: Array
    worst: NDArray[np.intp]
    futures_contingency: Array
    option_contingency: Array
    maintenance: Array
    initial: Array


def _standard_initial(
    indptr: NDArray[np.integer[Any]], rows: NDArray[np.integer[Any]], standard: Array
) -> Array | None:
    if standard.shape[0] == 0:
        return None
    holder = np.repeat(np.arange(indptr.shape[0] - 1), np.diff(indptr))
    summed = np.bincount(holder, standard[rows], minlength=indptr.shape[0] - 1)
    return np.asarray(summed, dtype=np.float64)


def holder_figures_reference(
    priced: PricedGroup,
    indptr: NDArray[np.integer[Any]],
    rows: NDArray[np.integer[Any]],
    col: NDArray[np.integer[Any]],
    qty: Array,
    standard: Array,
) -> HolderFigures:
    """Readable version: :func:`group_margin` of the holders' positions.

    Holder ``h`` holds positions ``indptr[h]:indptr[h + 1]``: quantity ``qty[rows[p]]`` of
    the group's instrument ``col[p]``. ``standard`` is every row's standard IM, read at
    ``rows`` for ``pm_hybrid``'s floor (empty: no floor).
    """
    holders = indptr.shape[0] - 1
    holder = np.repeat(np.arange(holders), np.diff(indptr))
    margin = group_margin(
        priced,
        GroupPositions(holder, col, qty[rows], holders),
        _standard_initial(indptr, rows, standard),
    )
    return HolderFigures(
        margin.loss,
        margin.worst,
        margin.futures_contingency,
        margin.option_contingency,
        margin.maintenance,
        margin.initial,
    )


def _fused(
    indptr: Any,
    rows: Any,
    col: Any,
    qty: Any,
    standard: Any,
    values: Any,
    weight: Any,
    exposure: Any,
    short_unit: Any,
    strike_key: Any,
    n_keys: int,
    futures_rate: float,
    im_factor: float,
    floor: float,
    out: Any,
    worst: Any,
) -> None:  # pragma: no cover - compiled by numba; checked against the reference
    n_scenarios = values.shape[1]
    with_floor = standard.shape[0] > 0
    pnl = np.empty(n_scenarios)
    net = np.zeros(max(n_keys, 1))
    for h in range(indptr.shape[0] - 1):
        start, end = indptr[h], indptr[h + 1]
        pnl[:] = 0.0
        delta = 0.0
        standard_initial = 0.0
        for p in range(start, end):
            c = col[p]
            q = qty[rows[p]]
            for s in range(n_scenarios):
                pnl[s] += q * values[c, s]
            delta += q * exposure[c]
            k = strike_key[c]
            if k >= 0:
                net[k] += q * short_unit[c]
            if with_floor:
                standard_initial += standard[rows[p]]
        best = 0
        low = 0.0
        for s in range(n_scenarios):  # the first minimum, or the first NaN, as np.argmin
            weighted = pnl[s] * weight[s]
            if weighted != weighted:
                best, low = s, weighted
                break
            if s == 0 or weighted < low:
                best, low = s, weighted
        loss = low if low != low else (-low if low < 0.0 else 0.0)
        options = 0.0
        for p in range(start, end):
            k = strike_key[col[p]]
            if k >= 0:
                if net[k] < 0.0:
                    options += -net[k]
                net[k] = 0.0  # counted once per (expiry, strike)
        futures = futures_rate * abs(delta)
        maintenance = loss + futures + options
        initial = maintenance * im_factor
        if with_floor:
            floored = floor * standard_initial
            if floored > initial or floored != floored:
                initial = floored
        worst[h] = best
        out[0, h] = loss
        out[1, h] = futures
        out[2, h] = options
        out[3, h] = maintenance
        out[4, h] = initial


_kernel: Any = compiled(_fused)


def holder_figures(
    priced: PricedGroup,
    indptr: NDArray[np.integer[Any]],
    rows: NDArray[np.integer[Any]],
    col: NDArray[np.integer[Any]],
    qty: Array,
    standard: Array,
) -> HolderFigures:
    """:func:`holder_figures_reference`, in one fused pass when numba is installed."""
    if _kernel is None:
        return holder_figures_reference(priced, indptr, rows, col, qty, standard)
    params = priced.params
    holders = indptr.shape[0] - 1
    out = np.empty((5, holders))
    worst = np.empty(holders, dtype=np.intp)
    with_floor = params.model == "pm_hybrid" and standard.shape[0] > 0
    option = priced.strike_key >= 0
    _kernel(
        indptr,
        rows,
        col,
        qty,
        standard if with_floor else np.empty(0),
        np.ascontiguousarray(priced.values),
        priced.scenarios.weight,
        priced.exposure,
        priced.short_unit,
        priced.strike_key,
        int(priced.strike_key[option].max()) + 1 if option.any() else 0,
        params.futures_contingency,
        params.im_factor,
        params.hybrid_floor,
        out,
        worst,
    )
    return HolderFigures(out[0], worst, out[1], out[2], out[3], out[4])
