"""Fused kernels for the revaluation, each with the numpy path as its reference.

numpy needs about twenty passes over the position arrays for what is one pass of
arithmetic (tier lookup, rates, uPnL, IM, MM, the per-unit sums). For books of linear
contracts (the common case, and the one the full revaluation spends its time on), one
numba kernel does it in one pass: per open row, the bracket of its notional, its figures
(written straight into the book's row figures) and the scatter-add into its unit's
figures. ``revalue_book`` (``monitor.engine._revalue``) uses it when numba is installed
and falls back to the numpy path otherwise; a tick revalues its holders with
``revalue_rows``, the same arithmetic per row. Both run the kernel of the layout's width
class (``monitor.engine._width_kernels``: one table row per instrument, a number of
floors known when it is compiled); the loops here, over the layout's arrays, past the
widest class.

Every kernel here has a readable numpy reference next to it, and
``tests/unit/test_engine_kernels.py`` checks them against each other on random
inputs. Kernels are compiled on first use and cached on disk (``cache=True``);
``monitor.engine._warm.warm_up`` compiles them ahead, off the event loop. They release
the GIL (``nogil=True``), so a thread running one does not stall the event loop.

Formulas are those of ``monitor.models._valuation`` (Binance brackets, Deribit
size-scaled rates) and ``monitor.book._contracts`` (linear uPnL). The per-unit kernels
(collateral, sums along row lists) are in ``monitor.engine._unit_kernels``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.book import Index
from monitor.compiled import HAVE_NUMBA, compiled
from monitor.models._layout import Layout, bracket_flat_index

__all__ = [
    "ENABLED",
    "HAVE_NUMBA",
    "brackets",
    "brackets_reference",
    "jit",
    "revalue_linear_loops",
    "revalue_linear_reference",
    "revalue_rows_loops",
    "revalue_rows_reference",
]

# Whether the engine runs the kernels (True when numba is there); False runs the numpy
# references instead, to time them or to check a kernel against them in place.
ENABLED = HAVE_NUMBA


def jit(function: Any, reference: Any) -> Any:
    """``function`` compiled (cached on disk, GIL released), or ``reference`` without numba.

    numpy's error model: a division by zero gives inf or NaN as in the references,
    rather than a check and an exception per division. A helper that kernels call per
    element takes scalars only: passing arrays costs reference counting per call, many
    times the arithmetic (kernels repeat a short loop instead).
    """
    kernel = compiled(function, numpy_errors=True)
    return reference if kernel is None else kernel


# ---------------------------------------------------------------------- tier lookup


def brackets_reference(layout: Layout, instrument: Index, notional: NDArray[np.float64]) -> Index:
    """Each position's bracket (column of ``layout.floors``): brackets cover ``(floor,
    cap]``, see ``monitor.models._layout.bracket_flat_index``."""
    flat = bracket_flat_index(layout, instrument, np.ascontiguousarray(notional))
    result: Index = flat - instrument * layout.max_tiers
    return result


def _brackets(
    instrument: Any, notional: Any, n_tiers: Any, floors: Any, out: Any
) -> None:  # pragma: no cover - compiled by numba; checked against the reference
    # Floors ascend and are padded with +inf, so the bracket is the count of floors
    # (after the first) below the notional: no branch to mispredict, whatever the size.
    for k in range(instrument.shape[0]):
        ix = instrument[k]
        b = 0
        for j in range(1, floors.shape[1]):
            b += notional[k] > floors[ix, j]
        out[k] = b


def _brackets_numpy(
    instrument: Any, notional: Any, n_tiers: Any, floors: Any, out: Any
) -> None:  # the fallback without numba: the same comparisons, vectorised
    bracket = np.zeros(instrument.shape[0], dtype=np.intp)
    for j in range(1, floors.shape[1]):
        bracket += (notional > floors[instrument, j]) & (j < n_tiers[instrument])
    out[:] = bracket


brackets: Any = jit(_brackets, _brackets_numpy)
"""``brackets(instrument, notional, n_tiers, floors, out)``: the tier lookup alone,
``out[k]`` the bracket of ``notional[k]`` (``brackets_reference``)."""


# ---------------------------------------------------------------------- linear revaluation


def revalue_linear_reference(
    instrument: Index,
    qty: NDArray[np.float64],
    entry: NDArray[np.float64],
    leverage: NDArray[np.float64],
    unit: Index,
    mark: NDArray[np.float64],
    contract_size: NDArray[np.float64],
    settle_value: NDArray[np.float64],
    n_tiers: Index,
    floors: NDArray[np.float64],
    mmr: NDArray[np.float64],
    imr: NDArray[np.float64],
    cum: NDArray[np.float64],
    mm_slope: NDArray[np.float64],
    im_slope: NDArray[np.float64],
    row_figures: NDArray[np.float64],
    unit_figures: NDArray[np.float64],
) -> None:
    """Readable numpy version: ``row_figures[r] = (uPnL, IM, MM)`` of every row in the
    valuation asset, and ``unit_figures[u, 1:5] += (uPnL, IM, MM, |uPnL|)`` over open
    rows (the columns of ``UnitTable.figures`` after collateral)."""
    cs = contract_size[instrument]
    size = np.abs(qty) * cs
    m = mark[instrument]
    notional = size * m
    bracket = np.zeros(qty.shape[0], dtype=np.intp)
    for j in range(1, floors.shape[1]):
        bracket += (notional > floors[instrument, j]) & (j < n_tiers[instrument])
    mm_rate = mmr[instrument, bracket] + mm_slope[instrument] * size
    im_rate = imr[instrument, bracket] + im_slope[instrument] * size
    with np.errstate(divide="ignore"):
        im_rate = np.fmax(im_rate, 1.0 / leverage)
    value = settle_value[instrument]
    upnl = qty * cs * (m - entry) * value
    initial = notional * im_rate * value
    maintenance = (notional * mm_rate - cum[instrument, bracket]) * value
    row_figures[:, 0], row_figures[:, 1], row_figures[:, 2] = upnl, initial, maintenance
    is_open = qty != 0.0
    n_units = unit_figures.shape[0]
    for k, column in enumerate((upnl, initial, maintenance, np.abs(upnl)), start=1):
        unit_figures[:, k] += np.bincount(unit[is_open], column[is_open], minlength=n_units)


def _linear(
    q: Any,
    entry: Any,
    leverage: Any,
    cs: Any,
    m: Any,
    value: Any,
    mmr: Any,
    imr: Any,
    cum: Any,
    mm_slope: Any,
    im_slope: Any,
) -> Any:  # pragma: no cover - compiled by numba; the kernels' arithmetic per row
    """(uPnL, IM, MM) of one linear position in the valuation asset, given its bracket's
    rates and amount (scalars only: see ``jit``)."""
    size = abs(q) * cs
    notional = size * m
    mm_rate = mmr + mm_slope * size
    im_rate = imr + im_slope * size
    by_leverage = 1.0 / leverage  # NaN (no leverage set) never wins
    im_rate = by_leverage if by_leverage > im_rate else im_rate
    upnl = q * cs * (m - entry) * value
    initial = notional * im_rate * value
    maintenance = (notional * mm_rate - cum) * value
    return upnl, initial, maintenance


_linear_one: Any = jit(_linear, None)


def _bracket_of(q: Any, cs: Any, m: Any, ix: Any, floors: Any) -> Any:  # pragma: no cover
    """The bracket of a position's notional, as ``brackets`` (inlined by numba: only
    ``floors`` is an array)."""
    notional = abs(q) * cs * m
    b = 0
    for j in range(1, floors.shape[1]):
        b += notional > floors[ix, j]
    return b


_bracket_one: Any = compiled(_bracket_of, numpy_errors=True, inline=True)


def _revalue_linear(
    instrument: Any,
    qty: Any,
    entry: Any,
    leverage: Any,
    unit: Any,
    mark: Any,
    contract_size: Any,
    settle_value: Any,
    n_tiers: Any,
    floors: Any,
    mmr: Any,
    imr: Any,
    cum: Any,
    mm_slope: Any,
    im_slope: Any,
    row_figures: Any,
    unit_figures: Any,
) -> None:  # pragma: no cover - compiled by numba; checked against the reference
    for r in range(qty.shape[0]):
        ix = instrument[r]
        q = qty[r]
        cs, m = contract_size[ix], mark[ix]
        b = _bracket_one(q, cs, m, ix, floors)
        upnl, initial, maintenance = _linear_one(
            q, entry[r], leverage[r], cs, m, settle_value[ix], mmr[ix, b], imr[ix, b],
            cum[ix, b], mm_slope[ix], im_slope[ix],
        )  # fmt: skip
        row_figures[r, 0] = upnl
        row_figures[r, 1] = initial
        row_figures[r, 2] = maintenance
        if q != 0.0:
            u = unit[r]
            unit_figures[u, 1] += upnl
            unit_figures[u, 2] += initial
            unit_figures[u, 3] += maintenance
            unit_figures[u, 4] += abs(upnl)


revalue_linear_loops: Any = jit(_revalue_linear, revalue_linear_reference)
"""``revalue_linear_reference`` compiled as one loop over the layout's arrays (the
reference without numba); ``monitor.engine._width_kernels.revalue_linear`` runs it past
the widest width class."""


def revalue_rows_reference(
    rows: Index,
    instrument: Index,
    qty: NDArray[np.float64],
    entry: NDArray[np.float64],
    leverage: NDArray[np.float64],
    mark: NDArray[np.float64],
    contract_size: NDArray[np.float64],
    settle_value: NDArray[np.float64],
    n_tiers: Index,
    floors: NDArray[np.float64],
    mmr: NDArray[np.float64],
    imr: NDArray[np.float64],
    cum: NDArray[np.float64],
    mm_slope: NDArray[np.float64],
    im_slope: NDArray[np.float64],
    row_figures: NDArray[np.float64],
) -> None:
    """``row_figures[rows] = (uPnL, IM, MM)`` of those rows (a tick's holders), as
    ``revalue_linear_reference`` computes them."""
    fresh = np.empty((rows.shape[0], 3))
    revalue_linear_reference(
        instrument[rows], qty[rows], entry[rows], leverage[rows],
        np.zeros(rows.shape[0], dtype=np.intp), mark, contract_size, settle_value, n_tiers,
        floors, mmr, imr, cum, mm_slope, im_slope, fresh, np.zeros((1, 5)),
    )  # fmt: skip
    row_figures[rows] = fresh


def _revalue_rows(
    rows: Any,
    instrument: Any,
    qty: Any,
    entry: Any,
    leverage: Any,
    mark: Any,
    contract_size: Any,
    settle_value: Any,
    n_tiers: Any,
    floors: Any,
    mmr: Any,
    imr: Any,
    cum: Any,
    mm_slope: Any,
    im_slope: Any,
    row_figures: Any,
) -> None:  # pragma: no cover - compiled by numba; checked against the reference
    for k in range(rows.shape[0]):
        r = rows[k]
        ix = instrument[r]
        q, cs, m = qty[r], contract_size[ix], mark[ix]
        b = _bracket_one(q, cs, m, ix, floors)
        upnl, initial, maintenance = _linear_one(
            q, entry[r], leverage[r], cs, m, settle_value[ix], mmr[ix, b], imr[ix, b],
            cum[ix, b], mm_slope[ix], im_slope[ix],
        )  # fmt: skip
        row_figures[r, 0] = upnl
        row_figures[r, 1] = initial
        row_figures[r, 2] = maintenance


revalue_rows_loops: Any = jit(_revalue_rows, revalue_rows_reference)
"""``revalue_rows_reference`` compiled as one loop over the layout's arrays (the
reference without numba); ``monitor.engine._width_kernels.revalue_rows`` runs it past
the widest width class."""
