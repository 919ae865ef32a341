"""Fused kernels for a tick that moves many option positions, with their numpy references.

A tick of an underlying moves the mark of every option on it, so every position in those
options is revalued and every unit holding one is summed afresh. numpy does that in about
fifteen passes over the rows (gathers per column, the per-kind split, strided writes into
the figures, one bincount per column); these kernels do one:

* :func:`revalue_option_rows`: an option position's figures from its instrument's mark and
  short margin per base unit (``monitor.book._contracts``: value ``qty x contract_size x
  mark``, short IM/MM ``max(0, -qty x contract_size) x`` the instrument's short margin,
  times the settle asset's value), written into the row; rows of other kinds are handed
  back for the numpy path (``monitor.engine._revalue.figures``).
* :func:`moved_rows`: the same for every open row of the instruments a tick moved, found
  by one sequential pass over all rows (no gathering of holder lists), marking the units
  they count in;
* :func:`unit_sums_into`: uPnL, IM, MM and gross of the chosen units over their open rows,
  written into the unit table in row order (the same order, hence the same sums, as
  ``np.bincount``);
* :func:`touched_units`: the units of the open rows of the instruments a tick moved.

Compiled on first use, cached on disk, releasing the GIL; ``monitor.engine.warm_up`` compiles them
ahead. ``tests/unit/test_tick_kernels.py`` checks each against its reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.book import Index
from monitor.compiled import HAVE_NUMBA, compiled
from monitor.models import OPTION

__all__ = [
    "HAVE_NUMBA",
    "moved_rows",
    "moved_rows_reference",
    "revalue_option_rows",
    "revalue_option_rows_reference",
    "touched_units",
    "touched_units_reference",
    "unit_sums_into",
    "unit_sums_into_reference",
    "unit_sums_reference",
]

Array = NDArray[np.float64]
Ints = Index


def revalue_option_rows_reference(
    rows: Ints,
    instrument: Ints,
    qty: Array,
    kind: NDArray[np.int8],
    contract_size: Array,
    mark: Array,
    short_initial: Array,
    short_maintenance: Array,
    value: Array,
    figures: Array,
) -> Ints:
    """Readable version: write ``figures[r] = (value, IM, MM)`` of the option rows among
    ``rows``; return where the others are in ``rows``. ``value`` is per instrument (of its
    settle asset)."""
    ix = instrument[rows]
    option = kind[ix] == OPTION
    rows, ix = rows[option], ix[option]
    size = qty[rows] * contract_size[ix]
    short = np.maximum(-size, 0.0)
    v = value[ix]
    figures[rows, 0] = size * mark[ix] * v
    figures[rows, 1] = short * short_initial[ix] * v
    figures[rows, 2] = short * short_maintenance[ix] * v
    others: Ints = np.flatnonzero(~option)
    return others


def _option_rows(
    rows: Any,
    instrument: Any,
    qty: Any,
    kind: Any,
    contract_size: Any,
    mark: Any,
    short_initial: Any,
    short_maintenance: Any,
    value: Any,
    figures: Any,
    others: Any,
) -> int:  # pragma: no cover - compiled by numba; checked against the reference
    n_others = 0
    every = rows.shape[0] == 0  # no rows given: every row, in order (a sequential pass)
    for i in range(instrument.shape[0] if every else rows.shape[0]):
        r = i if every else rows[i]
        ix = instrument[r]
        if kind[ix] != OPTION:
            others[n_others] = i
            n_others += 1
            continue
        size = qty[r] * contract_size[ix]
        short = -size if size < 0.0 else 0.0
        v = value[ix]
        figures[r, 0] = size * mark[ix] * v
        figures[r, 1] = short * short_initial[ix] * v
        figures[r, 2] = short * short_maintenance[ix] * v
    return n_others


def moved_rows_reference(
    moved: NDArray[np.bool_],
    instrument: Ints,
    qty: Array,
    unit: Ints,
    kind: NDArray[np.int8],
    contract_size: Array,
    mark: Array,
    short_initial: Array,
    short_maintenance: Array,
    value: Array,
    figures: Array,
    touched: NDArray[np.bool_],
) -> Ints:
    """Readable version: over the open rows of ``moved`` instruments, revalue the option
    rows (as :func:`revalue_option_rows_reference`), set ``touched[unit]`` of every such
    row, and return the rows of other kinds, in order."""
    rows = np.flatnonzero(moved[instrument] & (qty != 0.0))
    touched[unit[rows]] = True
    others = revalue_option_rows_reference(
        rows, instrument, qty, kind, contract_size, mark, short_initial, short_maintenance,
        value, figures,
    )  # fmt: skip
    result: Ints = rows[others]
    return result


def _moved_rows(
    moved: Any,
    instrument: Any,
    qty: Any,
    unit: Any,
    kind: Any,
    contract_size: Any,
    mark: Any,
    short_initial: Any,
    short_maintenance: Any,
    value: Any,
    figures: Any,
    touched: Any,
    others: Any,
) -> int:  # pragma: no cover - compiled by numba; checked against the reference
    n_others = 0
    for r in range(instrument.shape[0]):
        ix = instrument[r]
        q = qty[r]
        if not moved[ix] or q == 0.0:
            continue
        touched[unit[r]] = True
        if kind[ix] != OPTION:
            others[n_others] = r
            n_others += 1
            continue
        size = q * contract_size[ix]
        short = -size if size < 0.0 else 0.0
        v = value[ix]
        figures[r, 0] = size * mark[ix] * v
        figures[r, 1] = short * short_initial[ix] * v
        figures[r, 2] = short * short_maintenance[ix] * v
    return n_others


def unit_sums_reference(unit: Ints, qty: Array, figures: Array, n_units: int) -> Array:
    """Readable version: ``[n_units, 4]`` sums of (uPnL, IM, MM, |uPnL|) over open rows."""
    is_open = qty != 0.0
    unit, values = unit[is_open], figures[is_open]
    sums = np.empty((n_units, 4))
    for k in range(3):
        sums[:, k] = np.bincount(unit, values[:, k], minlength=n_units)
    sums[:, 3] = np.bincount(unit, np.abs(values[:, 0]), minlength=n_units)
    return sums


def _unit_sums_into(
    units: Any, unit: Any, qty: Any, figures: Any, target: Any, chosen: Any
) -> None:  # pragma: no cover
    for k in range(units.shape[0]):
        u = units[k]
        chosen[u] = True
        for c in range(1, 5):
            target[u, c] = 0.0
    for r in range(qty.shape[0]):
        if qty[r] != 0.0:
            u = unit[r]
            if chosen[u]:
                upnl = figures[r, 0]
                target[u, 1] += upnl
                target[u, 2] += figures[r, 1]
                target[u, 3] += figures[r, 2]
                target[u, 4] += abs(upnl)
    for k in range(units.shape[0]):
        chosen[units[k]] = False


def _touched_units(
    ticked: Any, instrument: Any, qty: Any, unit: Any, touched: Any
) -> None:  # pragma: no cover
    for r in range(qty.shape[0]):
        if qty[r] != 0.0 and ticked[instrument[r]]:
            touched[unit[r]] = True


_option_kernel: Any = compiled(_option_rows)
_touched_kernel: Any = compiled(_touched_units)
_sums_into_kernel: Any = compiled(_unit_sums_into)
_moved_kernel: Any = compiled(_moved_rows)


def moved_rows(
    moved: NDArray[np.bool_],
    instrument: Ints,
    qty: Array,
    unit: Ints,
    kind: NDArray[np.int8],
    contract_size: Array,
    mark: Array,
    short_initial: Array,
    short_maintenance: Array,
    value: Array,
    figures: Array,
    touched: NDArray[np.bool_],
) -> Ints:
    """:func:`moved_rows_reference` in one sequential pass over the rows when numba is
    installed: cheaper than gathering and scattering the scattered rows of many holders."""
    if _moved_kernel is None:
        return moved_rows_reference(
            moved, instrument, qty, unit, kind, contract_size, mark, short_initial,
            short_maintenance, value, figures, touched,
        )  # fmt: skip
    others = np.empty(instrument.shape[0], dtype=np.intp)
    count = _moved_kernel(
        moved, instrument, qty, unit, kind, contract_size, mark, short_initial,
        short_maintenance, value, figures, touched, others,
    )  # fmt: skip
    return others[:count]


def revalue_option_rows(
    rows: Ints | None,
    instrument: Ints,
    qty: Array,
    kind: NDArray[np.int8],
    contract_size: Array,
    mark: Array,
    short_initial: Array,
    short_maintenance: Array,
    value: Array,
    figures: Array,
) -> Ints:
    """:func:`revalue_option_rows_reference`, in one pass when numba is installed.

    ``rows=None``: every row of ``instrument`` (cheaper than scattered rows when they are
    many), returning the other rows."""
    if rows is None:
        rows = np.arange(instrument.shape[0], dtype=np.intp)
        if _option_kernel is not None:
            others = np.empty(rows.shape[0], dtype=np.intp)
            count = _option_kernel(
                rows[:0], instrument, qty, kind, contract_size, mark, short_initial,
                short_maintenance, value, figures, others,
            )  # fmt: skip
            return others[:count]
    if _option_kernel is None:
        return revalue_option_rows_reference(
            rows, instrument, qty, kind, contract_size, mark, short_initial,
            short_maintenance, value, figures,
        )  # fmt: skip
    others = np.empty(rows.shape[0], dtype=np.intp)
    count = _option_kernel(
        rows, instrument, qty, kind, contract_size, mark, short_initial, short_maintenance,
        value, figures, others,
    )  # fmt: skip
    return others[:count]


def unit_sums_into_reference(
    units: Ints, unit: Ints, qty: Array, figures: Array, target: Array
) -> None:
    """Readable version: columns 1-4 of ``target`` (a unit table's figures: uPnL, IM,
    MM, |uPnL|) of ``units`` (distinct) become their sums over open rows."""
    target[units, 1:5] = unit_sums_reference(unit, qty, figures, target.shape[0])[units]


def unit_sums_into(units: Ints, unit: Ints, qty: Array, figures: Array, target: Array) -> None:
    """:func:`unit_sums_into_reference` in one pass over the rows when numba is
    installed, written in place: no ``[units, 4]`` temporaries (32 MB each at a million
    units) to allocate, gather and scatter. Same sums, same order (row order)."""
    if _sums_into_kernel is None:
        unit_sums_into_reference(units, unit, qty, figures, target)
        return
    chosen = np.zeros(target.shape[0], dtype=np.bool_)
    _sums_into_kernel(units, unit, qty, figures, target, chosen)


def touched_units_reference(
    ticked: NDArray[np.bool_], instrument: Ints, qty: Array, unit: Ints, n_units: int
) -> Ints:
    """Readable version: the units (sorted, distinct) of the open rows whose instrument
    is marked in ``ticked``."""
    touched = np.zeros(n_units, dtype=np.bool_)
    touched[unit[ticked[instrument] & (qty != 0.0)]] = True
    return np.flatnonzero(touched)


def touched_units(
    ticked: NDArray[np.bool_], instrument: Ints, qty: Array, unit: Ints, n_units: int
) -> Ints:
    """:func:`touched_units_reference` in one pass over the rows when numba is
    installed (no row-sized temporaries)."""
    if _touched_kernel is None:
        return touched_units_reference(ticked, instrument, qty, unit, n_units)
    touched = np.zeros(n_units, dtype=np.bool_)
    _touched_kernel(ticked, instrument, qty, unit, touched)
    return np.flatnonzero(touched)
