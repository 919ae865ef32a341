"""Width classes of the linear revaluation kernels: one table row per instrument.

The loops of ``monitor.engine._kernels`` read an instrument's terms from thirteen arrays
(contract size, mark, settle value, slopes, floors and the three bracket columns): as
many cache lines per row of a random instrument. The kernels here first copy them into
one row per instrument of a table (the terms, the floors, then each bracket's MMR, IMR
and amount side by side), and compare a number of floors known at compile time: one kernel per
width class (``WIDTHS``), floors padded with +inf as in the layout. Measured in one
process against those loops, per row: the engine bench's book (3M rows, 500
instruments of five brackets) 5.4 ns against 8.3 in cache, 6.7-9.0 against 12.5-13.9
over the whole book; random books of 9 to 17 brackets, 0.67-0.86 of the time. A
layout of more brackets than the widest class runs those loops. Arithmetic, order of
addition and results are theirs, to the bit.

``revalue_linear`` and ``revalue_rows`` pick the class of a layout (``_class_of``).
The kernels over whole units (the price bands' revaluation, alone or with judging) use
the same table: ``monitor.engine._width_units``, whose ``compile_every_width`` gives
every class of both modules the signatures any met (the warm-up).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.book import Index
from monitor.compiled import HAVE_NUMBA, compiled
from monitor.engine._kernels import (
    _linear_one,
    revalue_linear_loops,
    revalue_rows_loops,
)

__all__ = ["WIDTHS", "revalue_linear", "revalue_rows"]

WIDTHS = (4, 8, 12, 16)
"""Floors (after the first) compared per row by each width class of the kernels."""

_HEAD = 5  # contract size, mark, settle value, MM slope, IM slope; then floors and rates


def _table_of(
    width: Any,
    mark: Any,
    contract_size: Any,
    settle_value: Any,
    floors: Any,
    mmr: Any,
    imr: Any,
    cum: Any,
    mm_slope: Any,
    im_slope: Any,
) -> Any:  # pragma: no cover - compiled by numba
    """The table of a width class: per instrument its terms, ``width`` floors (after the
    first, +inf past its last) and each bracket's (MMR, IMR, amount) side by side."""
    n, brackets = floors.shape
    rates_at = _HEAD + width
    table = np.empty((n, rates_at + 3 * (width + 1)))
    for ix in range(n):
        table[ix, 0] = contract_size[ix]
        table[ix, 1] = mark[ix]
        table[ix, 2] = settle_value[ix]
        table[ix, 3] = mm_slope[ix]
        table[ix, 4] = im_slope[ix]
        for j in range(width):
            table[ix, _HEAD + j] = floors[ix, j + 1] if j + 1 < brackets else np.inf
        for j in range(width + 1):
            inside = j < brackets
            at = rates_at + 3 * j
            table[ix, at] = mmr[ix, j] if inside else 0.0
            table[ix, at + 1] = imr[ix, j] if inside else 0.0
            table[ix, at + 2] = cum[ix, j] if inside else 0.0
    return table


_table_one: Any = compiled(_table_of, numpy_errors=True)


def _class_row(
    width: Any, q: Any, entry: Any, leverage: Any, ix: Any, table: Any
) -> Any:  # pragma: no cover - compiled by numba, inlined: ``width`` a constant there
    """(uPnL, IM, MM) of one row from the table of its width class."""
    cs, m = table[ix, 0], table[ix, 1]
    notional = abs(q) * cs * m
    b = 0
    for j in range(width):
        b += notional > table[ix, _HEAD + j]
    at = _HEAD + width + 3 * b
    return _linear_one(
        q, entry, leverage, cs, m, table[ix, 2], table[ix, at], table[ix, at + 1],
        table[ix, at + 2], table[ix, 3], table[ix, 4],
    )  # fmt: skip


_class_row_one: Any = compiled(_class_row, numpy_errors=True, inline=True)


def _class_kernels(width: int) -> tuple[Any, Any]:
    """(``revalue_linear``, ``revalue_rows``) comparing ``width`` floors, compiled. The
    kernels close over ``width`` alone (an int): numba's disk cache keys a closure by
    the values it closes over, so a closure over a compiled helper would never hit."""

    def linear(
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
        table = _table_one(
            width, mark, contract_size, settle_value, floors, mmr, imr, cum, mm_slope, im_slope
        )
        for r in range(qty.shape[0]):
            q = qty[r]
            upnl, initial, maintenance = _class_row_one(
                width, q, entry[r], leverage[r], instrument[r], table
            )
            row_figures[r, 0] = upnl
            row_figures[r, 1] = initial
            row_figures[r, 2] = maintenance
            if q != 0.0:
                u = unit[r]
                unit_figures[u, 1] += upnl
                unit_figures[u, 2] += initial
                unit_figures[u, 3] += maintenance
                unit_figures[u, 4] += abs(upnl)

    def rows_of(
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
        table = _table_one(
            width, mark, contract_size, settle_value, floors, mmr, imr, cum, mm_slope, im_slope
        )
        for k in range(rows.shape[0]):
            r = rows[k]
            upnl, initial, maintenance = _class_row_one(
                width, qty[r], entry[r], leverage[r], instrument[r], table
            )
            row_figures[r, 0] = upnl
            row_figures[r, 1] = initial
            row_figures[r, 2] = maintenance

    return compiled(linear, numpy_errors=True), compiled(rows_of, numpy_errors=True)


if HAVE_NUMBA:
    revalue_linear_4, revalue_rows_4 = _class_kernels(4)
    revalue_linear_8, revalue_rows_8 = _class_kernels(8)
    revalue_linear_12, revalue_rows_12 = _class_kernels(12)
    revalue_linear_16, revalue_rows_16 = _class_kernels(16)
    _LINEAR: tuple[Any, ...] = (
        revalue_linear_4, revalue_linear_8, revalue_linear_12, revalue_linear_16
    )  # fmt: skip
    _ROWS: tuple[Any, ...] = (revalue_rows_4, revalue_rows_8, revalue_rows_12, revalue_rows_16)


def _class_of(floors: NDArray[np.float64], rows: int | None = None) -> int:
    """The narrowest width class comparing every floor of ``floors``, or -1: also for
    fewer ``rows`` than instruments, where building the table (a row per instrument, a
    few microseconds for 500) would cost more than it saves."""
    if rows is not None and rows < floors.shape[0]:
        return -1
    compared = floors.shape[1] - 1
    for k, width in enumerate(WIDTHS):
        if compared <= width:
            return k
    return -1


def revalue_linear(
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
    """``revalue_linear_reference``, fused: the width class's kernel for ``floors``, the
    loops past the widest class (the reference without numba)."""
    k = _class_of(floors, qty.shape[0]) if HAVE_NUMBA else -1
    kernel: Any = revalue_linear_loops if k < 0 else _LINEAR[k]
    kernel(
        instrument, qty, entry, leverage, unit, mark, contract_size, settle_value, n_tiers,
        floors, mmr, imr, cum, mm_slope, im_slope, row_figures, unit_figures,
    )  # fmt: skip


def revalue_rows(
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
    """``revalue_rows_reference``, fused (the width class's kernel, as ``revalue_linear``)."""
    k = _class_of(floors, rows.shape[0]) if HAVE_NUMBA else -1
    kernel: Any = revalue_rows_loops if k < 0 else _ROWS[k]
    kernel(
        rows, instrument, qty, entry, leverage, mark, contract_size, settle_value, n_tiers,
        floors, mmr, imr, cum, mm_slope, im_slope, row_figures,
    )  # fmt: skip
