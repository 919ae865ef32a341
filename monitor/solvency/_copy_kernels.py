"""The book copy a cycle pays and the open positions' values, as fused kernels with the
numpy path as their reference (why kernels, and how they are checked:
:mod:`monitor.solvency._kernels`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.solvency._gate import OPEN, SLICE, CycleGate, jit, resume

__all__ = ["position_values", "position_values_reference", "take_book", "take_book_reference"]

Array = NDArray[np.float64]
Index = NDArray[np.intp]
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
    out_units: Array,
    out_account: Index,
    out_rows: Array,
    out_index: Index,
) -> int:
    """Copy what the stress needs from the book's columns; return the open rows' count.

    Per unit: ``out_account`` its account, ``out_units[0]`` its equity (collateral +
    uPnL), ``out_units[1]`` the scale of its rounding (``|collateral| + gross``). Per
    open position (``pos_unit >= 0``), compacted in row order: ``out_index[0]`` its
    unit, ``out_index[1]`` its instrument, ``out_rows`` its quantity, entry, uPnL and
    maintenance margin (``pos_figures`` columns 0 and 2).
    """
    n = unit_account.shape[0]
    out_account[:n] = unit_account
    out_units[0, :n] = unit_figures[:, collateral] + unit_figures[:, upnl]
    out_units[1, :n] = np.abs(unit_figures[:, collateral]) + unit_figures[:, gross]
    rows = np.flatnonzero(pos_unit >= 0)
    k = rows.shape[0]
    out_index[0, :k] = pos_unit[rows]
    out_index[1, :k] = pos_instrument[rows]
    out_rows[0, :k] = pos_qty[rows]
    out_rows[1, :k] = pos_entry[rows]
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
    out_units: Any,
    out_account: Any,
    out_rows: Any,
    out_index: Any,
) -> int:  # pragma: no cover - compiled by numba; checked against the reference
    for u in range(unit_account.shape[0]):
        c = unit_figures[u, collateral]
        out_account[u] = unit_account[u]
        out_units[0, u] = c + unit_figures[u, upnl]
        out_units[1, u] = abs(c) + unit_figures[u, gross]
    k = 0
    for r in range(pos_unit.shape[0]):
        unit = pos_unit[r]
        if unit < 0:
            continue
        out_index[0, k] = unit
        out_index[1, k] = pos_instrument[r]
        out_rows[0, k] = pos_qty[r]
        out_rows[1, k] = pos_entry[r]
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


def _position_values(
    flag: Any,
    progress: Any,
    row_instrument: Any,
    row_qty: Any,
    row_entry: Any,
    is_inverse: Any,
    contract_size: Any,
    settle_value: Any,
    mark: Any,
    entry_value: Any,
    mark_value: Any,
) -> bool:  # pragma: no cover - compiled by numba; checked against the reference
    r = progress[1]
    while r < row_qty.shape[0]:
        i = row_instrument[r]
        size = row_qty[r] * contract_size[i]
        if is_inverse[i]:
            e = abs(size) / row_entry[r]
            m = size / mark[i]
        else:
            e = abs(size * row_entry[r])
            m = size * mark[i]
        entry_value[r] = _finite_nb(e * settle_value[i])
        mark_value[r] = _finite_nb(m * settle_value[i])
        r += 1
        if (r & SLICE) == 0 and flag[0] != 0:
            progress[1] = r
            return False
    return True


def position_values(
    row_instrument: Index,
    row_qty: Array,
    row_entry: Array,
    is_inverse: NDArray[np.bool_],
    contract_size: Array,
    settle_value: Array,
    mark: Array,
    *,
    gate: CycleGate = OPEN,
) -> tuple[Array, Array]:
    """:func:`position_values_reference`, pausing at a closed ``gate``."""
    n = row_qty.shape[0]
    entry_value, mark_value = np.empty(n), np.empty(n)
    resume(
        _position_values_nb, gate, row_instrument, row_qty, row_entry, is_inverse,
        contract_size, settle_value, mark, entry_value, mark_value,
    )  # fmt: skip
    return entry_value, mark_value


_finite_nb = jit(_finite)
_position_values_nb = jit(_position_values)
take_book: Any = jit(_take_book)
