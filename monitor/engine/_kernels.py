"""Fused kernels for the revaluation, each with the numpy path as its reference.

numpy needs about twenty passes over the position arrays for what is one pass of
arithmetic (tier lookup, rates, uPnL, IM, MM, the per-unit sums). For books of linear
contracts (the common case, and the one the full revaluation spends its time on), one
numba kernel does it in one pass: per open row, the bracket of its notional, its figures
(written straight into the book's row figures) and the scatter-add into its unit's
figures. ``revalue_book`` (``monitor.engine._revalue``) uses it when numba is installed
and falls back to the numpy path otherwise; a tick revalues its holders with
``revalue_rows``, the same arithmetic per row. Both run the kernel of the layout's width
class: one table row per instrument, a number of floors known when it is compiled
(below, "one table row per instrument").

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
    "compile_every_width",
    "jit",
    "revalue_linear",
    "revalue_linear_reference",
    "revalue_rows",
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


# ------------------------------------------------------ one table row per instrument
#
# The loops above read an instrument's terms from thirteen arrays (contract size, mark,
# settle value, slopes, floors and the three bracket columns): as many cache lines per
# row of a random instrument. The kernels below first copy them into one row per
# instrument of a table (the terms, the floors, then each bracket's MMR, IMR and amount
# side by side), and compare a number of floors known at compile time: one kernel per
# width class (``WIDTHS``), floors padded with +inf as in the layout. Measured in one
# process against the loops above, per row: the engine bench's book (3M rows, 500
# instruments of five brackets) 5.4 ns against 8.3 in cache, 6.7-9.0 against 12.5-13.9
# over the whole book; random books of 9 to 17 brackets, 0.67-0.86 of the time. A
# layout of more brackets than the widest class runs the loops above. Arithmetic, order
# of addition and results are those of ``_revalue_linear`` and ``_revalue_rows``, to the
# bit.

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
    _GENERIC_LINEAR: Any = compiled(_revalue_linear, numpy_errors=True)


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
    generic one past the widest class, the reference without numba."""
    if not HAVE_NUMBA:
        kernel: Any = revalue_linear_reference
    else:
        k = _class_of(floors, qty.shape[0])
        kernel = _GENERIC_LINEAR if k < 0 else _LINEAR[k]
    kernel(
        instrument, qty, entry, leverage, unit, mark, contract_size, settle_value, n_tiers,
        floors, mmr, imr, cum, mm_slope, im_slope, row_figures, unit_figures,
    )  # fmt: skip


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


_generic_rows: Any = jit(_revalue_rows, revalue_rows_reference)


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
    kernel: Any = _generic_rows if k < 0 else _ROWS[k]
    kernel(
        rows, instrument, qty, entry, leverage, mark, contract_size, settle_value, n_tiers,
        floors, mmr, imr, cum, mm_slope, im_slope, row_figures,
    )  # fmt: skip


def compile_every_width() -> None:
    """Compile each width class's kernels, and the generic ones, for every signature any
    of them was compiled for (``monitor.engine._warm.warm_up`` runs books of one class;
    a venue's brackets may need another)."""
    if not HAVE_NUMBA:
        return
    for family in ((*_LINEAR, _GENERIC_LINEAR), (*_ROWS, _generic_rows)):
        signatures = {sig for kernel in family for sig in kernel.signatures}
        for kernel in family:
            for sig in signatures - set(kernel.signatures):
                kernel.compile(sig)
