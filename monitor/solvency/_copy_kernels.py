"""The book copy a cycle pays and the open positions' values, as fused kernels with the
numpy path as their reference (why kernels, and how they are checked:
:mod:`monitor.solvency._kernels`)."""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from monitor.book import Index
from monitor.engine._kernels import _bracket_one, _linear_one, revalue_linear_reference
from monitor.models._layout import Layout
from monitor.solvency._gate import OPEN, SLICE, CycleGate, jit, resume

__all__ = [
    "COPY_IDS",
    "position_values_reference",
    "revalue_copy",
    "revalue_copy_reference",
    "take_book",
    "take_book_reference",
    "values_one",
]

Array = NDArray[np.float64]
# The copy's unit, instrument and account ids (take_book's outputs): 4 bytes each, not 8.
# A book of 2**31 units would need hundreds of GB before its ids overflowed.
COPY_IDS: Final = np.int32
_MAX = float(np.finfo(np.float64).max)


def take_book_reference(
    unit_account: Index,
    unit_figures: Array,
    pos_unit: Index,
    pos_instrument: Index,
    pos_qty: Array,
    pos_entry: Array,
    pos_figures: Array,
    collateral: int,
    upnl: int,
    gross: int,
    with_figures: bool,
    out_units: Array,
    out_account: Index,
    out_rows: Array,
    out_index: Index,
) -> int:
    """Copy what the stress needs from the book's columns; return the open rows' count.

    Per unit: ``out_account`` its account, ``out_units[0]`` its equity (collateral +
    uPnL), ``out_units[1]`` the scale of its rounding (``|collateral| + gross``),
    ``out_units[2]`` its collateral. Per open position (``pos_unit >= 0``), compacted in
    row order: ``out_index[0]`` its unit, ``out_index[1]`` its instrument, ``out_rows``
    its quantity, entry, uPnL and maintenance margin (``pos_figures`` columns 0 and 2).
    Without ``with_figures`` the equity, scale, uPnL and MM are not copied (a book with
    price bands: the copy is revalued off the loop instead, and the leverage, which sets
    only the initial margin, is not needed for that).
    """
    n = unit_account.shape[0]
    out_account[:n] = unit_account
    if with_figures:
        out_units[0, :n] = unit_figures[:, collateral] + unit_figures[:, upnl]
        out_units[1, :n] = np.abs(unit_figures[:, collateral]) + unit_figures[:, gross]
    out_units[2, :n] = unit_figures[:, collateral]
    rows = np.flatnonzero(pos_unit >= 0)
    k = rows.shape[0]
    out_index[0, :k] = pos_unit[rows]
    out_index[1, :k] = pos_instrument[rows]
    out_rows[0, :k] = pos_qty[rows]
    out_rows[1, :k] = pos_entry[rows]
    if with_figures:
        out_rows[2, :k] = pos_figures[rows, 0]
        out_rows[3, :k] = pos_figures[rows, 2]
    return int(k)


def _take_book(
    unit_account: Any,
    unit_figures: Any,
    pos_unit: Any,
    pos_instrument: Any,
    pos_qty: Any,
    pos_entry: Any,
    pos_figures: Any,
    collateral: Any,
    upnl: Any,
    gross: Any,
    with_figures: Any,
    out_units: Any,
    out_account: Any,
    out_rows: Any,
    out_index: Any,
) -> int:  # pragma: no cover - compiled by numba; checked against the reference
    for u in range(unit_account.shape[0]):
        c = unit_figures[u, collateral]
        out_account[u] = unit_account[u]
        if with_figures:
            out_units[0, u] = c + unit_figures[u, upnl]
            out_units[1, u] = abs(c) + unit_figures[u, gross]
        out_units[2, u] = c
    k = 0
    for r in range(pos_unit.shape[0]):
        unit = pos_unit[r]
        if unit < 0:
            continue
        out_index[0, k] = unit
        out_index[1, k] = pos_instrument[r]
        out_rows[0, k] = pos_qty[r]
        out_rows[1, k] = pos_entry[r]
        if with_figures:
            out_rows[2, k] = pos_figures[r, 0]
            out_rows[3, k] = pos_figures[r, 2]
        k += 1
    return k


def position_values_reference(
    row_instrument: Index,
    row_qty: Array,
    row_entry: Array,
    is_inverse: NDArray[np.bool_],
    contract_size: Array,
    settle_value: Array,
    mark: Array,
) -> tuple[Array, Array]:
    """Per open position, in the valuation asset: ``|value at the average entry|`` and the
    signed value at the mark (inverse contracts: ``size / price``; linear and options
    ``size x price``); not finite values (no entry, no mark) as ``numpy.nan_to_num``."""
    inverse = is_inverse[row_instrument]
    size = row_qty * contract_size[row_instrument]
    value = settle_value[row_instrument]
    mark_of = mark[row_instrument]
    with np.errstate(divide="ignore", invalid="ignore"):
        entry_value = np.where(inverse, np.abs(size) / row_entry, np.abs(size * row_entry))
        mark_value = np.where(inverse, size / mark_of, size * mark_of)
    return np.nan_to_num(entry_value * value), np.nan_to_num(mark_value * value)


def _finite(x: float) -> float:
    """``numpy.nan_to_num`` of one number."""
    if math.isnan(x):
        return 0.0
    if math.isinf(x):
        return _MAX if x > 0.0 else -_MAX
    return x


def _values_one(
    qty: float,
    entry: float,
    is_inverse: bool,
    contract_size: float,
    settle_value: float,
    mark: float,
) -> tuple[float, float]:  # pragma: no cover - compiled by numba; checked through its callers
    """One position of :func:`position_values_reference`, for the kernels that read them
    where they use them (``monitor.solvency._adl_kernels``) rather than keep two arrays of
    them."""
    size = qty * contract_size
    if is_inverse:
        e = abs(size) / entry
        m = size / mark
    else:
        e = abs(size * entry)
        m = size * mark
    return _finite_nb(e * settle_value), _finite_nb(m * settle_value)


def revalue_copy_reference(
    row_unit: Index,
    row_instrument: Index,
    row_qty: Array,
    row_entry: Array,
    mark: Array,
    contract_size: Array,
    settle_value: Array,
    n_tiers: NDArray[np.intp],
    floors: Array,
    mmr: Array,
    imr: Array,
    cum: Array,
    mm_slope: Array,
    im_slope: Array,
    unit_collateral: Array,
    row_maintenance: Array,
    unit_equity: Array,
    unit_scale: Array,
) -> None:
    """A copy of a book of linear contracts revalued at its marks (the engine's
    ``revalue_linear_reference``): each open position's MM, each unit's equity
    (collateral + uPnL) and rounding scale (``|collateral| + sum |uPnL|``). For a book
    whose cached figures are those of the marks each unit was last judged at (price
    bands, ``monitor.engine._band_kernels``)."""
    n = row_qty.shape[0]
    figures, sums = np.empty((n, 3)), np.zeros((unit_collateral.shape[0], 5))
    no_leverage = np.full(n, np.nan)  # it sets the initial margin only, not needed here
    revalue_linear_reference(
        row_instrument.astype(np.intp), row_qty, row_entry, no_leverage,
        row_unit.astype(np.intp), mark, contract_size,
        settle_value, n_tiers, floors, mmr, imr, cum, mm_slope, im_slope, figures, sums,
    )  # fmt: skip
    row_maintenance[:] = figures[:, 2]
    unit_equity[:] = unit_collateral + sums[:, 1]
    unit_scale[:] = np.abs(unit_collateral) + sums[:, 4]


def _revalue_copy(
    flag: Any,
    progress: Any,
    row_unit: Any,
    row_instrument: Any,
    row_qty: Any,
    row_entry: Any,
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
    unit_collateral: Any,
    row_maintenance: Any,
    unit_equity: Any,
    unit_scale: Any,
) -> bool:  # pragma: no cover - compiled by numba; checked against the reference
    if progress[0] == 0:  # the units' sums start from their collateral
        for u in range(unit_collateral.shape[0]):
            unit_equity[u] = 0.0
            unit_scale[u] = 0.0
        progress[0] = 1
    r = progress[1]
    while r < row_qty.shape[0]:
        i = row_instrument[r]
        q, cs, m = row_qty[r], contract_size[i], mark[i]
        b = _bracket_one(q, cs, m, i, floors)
        upnl, _, maintenance = _linear_one(
            q, row_entry[r], math.nan, cs, m, settle_value[i], mmr[i, b], imr[i, b],
            cum[i, b], mm_slope[i], im_slope[i],
        )  # fmt: skip
        row_maintenance[r] = maintenance
        u = row_unit[r]
        unit_equity[u] += upnl  # the uPnL sum first, in row order, as revalue_linear
        unit_scale[u] += abs(upnl)
        r += 1
        if (r & SLICE) == 0 and flag[0] != 0:
            progress[1] = r
            return False
    for u in range(unit_collateral.shape[0]):
        c = unit_collateral[u]
        unit_equity[u] = c + unit_equity[u]
        unit_scale[u] = abs(c) + unit_scale[u]
    progress[1] = r
    return True


def revalue_copy(
    row_unit: Index,
    row_instrument: Index,
    row_qty: Array,
    row_entry: Array,
    mark: Array,
    layout: Layout,
    settle_value: Array,
    unit_collateral: Array,
    row_maintenance: Array,
    unit_equity: Array,
    unit_scale: Array,
    *,
    gate: CycleGate = OPEN,
) -> None:
    """:func:`revalue_copy_reference` (the layout's arrays), pausing at a closed ``gate``."""
    resume(
        _revalue_copy_nb, gate, row_unit, row_instrument, row_qty, row_entry, mark,
        layout.contract_size, settle_value, layout.n_tiers, layout.floors, layout.mmr,
        layout.imr, layout.cum, layout.mm_slope, layout.im_slope, unit_collateral,
        row_maintenance, unit_equity, unit_scale,
    )  # fmt: skip


_finite_nb = jit(_finite)
_revalue_copy_nb = jit(_revalue_copy)
values_one: Any = jit(_values_one)
take_book: Any = jit(_take_book)
