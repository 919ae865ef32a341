"""Per-unit kernels: collateral of margin units, sums along their row lists, and the
revaluation of every row of some units (a tick's flagged units, price bands).

Each with its numpy reference, checked against it in ``tests/unit/test_engine_kernels.py``
(compiled as ``monitor.engine._kernels.jit`` says). Formulas: ``monitor.book._collateral``
(wallet value after haircuts; an isolated unit's allocated margin at its settle asset's
value).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.book import NO_ROW, Index
from monitor.compiled import compiled
from monitor.engine._kernels import _bracket_one, _linear_one, jit, revalue_rows_reference

__all__ = [
    "reset_units",
    "reset_units_reference",
    "revalue_units_loops",
    "revalue_units_reference",
    "sum_unit_rows",
    "sum_unit_rows_reference",
    "unit_collateral",
    "unit_collateral_reference",
    "unit_rows_of",
]

Array = NDArray[np.float64]
Ints = Index


def unit_collateral_reference(
    unit_row: Index,
    unit_account: Index,
    balance: NDArray[np.float64],
    value: NDArray[np.float64],
    haircut: NDArray[np.float64],
    isolated_margin: NDArray[np.float64],
    row_instrument: Index,
    settle_value: NDArray[np.float64],
    out: NDArray[np.float64],
) -> None:
    """Collateral value of units: a cross unit's wallet after haircuts (``sum_a b_a x
    v_a - max(b_a, 0) x v_a x haircut_a``), an isolated unit's allocated margin times
    its settle asset's value (``settle_value`` per instrument)."""
    cross = unit_row == NO_ROW
    balances = balance[unit_account[cross]]
    out[cross] = (balances * value - np.maximum(balances, 0.0) * (value * haircut)).sum(axis=1)
    rows = unit_row[~cross]
    out[~cross] = isolated_margin[rows] * settle_value[row_instrument[rows]]


def _unit_collateral(
    unit_row: Any,
    unit_account: Any,
    balance: Any,
    value: Any,
    haircut: Any,
    isolated_margin: Any,
    row_instrument: Any,
    settle_value: Any,
    out: Any,
) -> None:  # pragma: no cover - compiled by numba; checked against the reference
    for u in range(unit_row.shape[0]):
        row = unit_row[u]
        if row != -1:
            out[u] = isolated_margin[row] * settle_value[row_instrument[row]]
            continue
        a = unit_account[u]
        total = 0.0
        for k in range(value.shape[0]):
            b = balance[a, k]
            total += b * value[k] - max(b, 0.0) * (value[k] * haircut[k])
        out[u] = total


unit_collateral: Any = jit(_unit_collateral, unit_collateral_reference)


def reset_units_reference(
    unit_row: Index,
    unit_account: Index,
    balance: NDArray[np.float64],
    value: NDArray[np.float64],
    haircut: NDArray[np.float64],
    isolated_margin: NDArray[np.float64],
    row_instrument: Index,
    settle_value: NDArray[np.float64],
    unit_figures: NDArray[np.float64],
) -> None:
    """Start of a full revaluation: each unit's collateral (``unit_collateral_reference``)
    in ``unit_figures[:, 0]``, its position sums (columns 1 to 4) zero."""
    collateral = np.empty(unit_row.shape[0])
    unit_collateral_reference(
        unit_row, unit_account, balance, value, haircut, isolated_margin, row_instrument,
        settle_value, collateral,
    )  # fmt: skip
    unit_figures[:, 0] = collateral
    unit_figures[:, 1:] = 0.0


def _reset_units(
    unit_row: Any,
    unit_account: Any,
    balance: Any,
    value: Any,
    haircut: Any,
    isolated_margin: Any,
    row_instrument: Any,
    settle_value: Any,
    unit_figures: Any,
) -> None:  # pragma: no cover - compiled by numba; checked against the reference
    for u in range(unit_row.shape[0]):
        for k in range(1, unit_figures.shape[1]):
            unit_figures[u, k] = 0.0
        row = unit_row[u]
        if row != -1:
            unit_figures[u, 0] = isolated_margin[row] * settle_value[row_instrument[row]]
            continue
        a = unit_account[u]
        total = 0.0  # as ``unit_collateral``
        for k in range(value.shape[0]):
            b = balance[a, k]
            total += b * value[k] - max(b, 0.0) * (value[k] * haircut[k])
        unit_figures[u, 0] = total


reset_units: Any = jit(_reset_units, reset_units_reference)


def sum_unit_rows_reference(
    units: Index,
    head: Index,
    unit_next: Index,
    row_figures: NDArray[np.float64],
    unit_figures: NDArray[np.float64],
) -> None:
    """``unit_figures[u, 1:5] = (uPnL, IM, MM, |uPnL|)`` summed along each unit's row list
    (head first), walking every list at once, one vectorised step per list position."""
    n = units.shape[0]
    sums = np.zeros((n, 4))
    slot = np.arange(n)
    row = head[units]
    live = row != -1
    slot, row = slot[live], row[live]
    while row.shape[0]:
        values = row_figures[row]
        sums[slot, :3] += values
        sums[slot, 3] += np.abs(values[:, 0])
        row = unit_next[row]
        live = row != -1
        slot, row = slot[live], row[live]
    unit_figures[units, 1:5] = sums


def _sum_unit_rows(
    units: Any, head: Any, unit_next: Any, row_figures: Any, unit_figures: Any
) -> None:  # pragma: no cover - compiled by numba; checked against the reference
    for k in range(units.shape[0]):
        u = units[k]
        upnl = initial = maintenance = gross = 0.0
        row = head[u]
        while row != -1:
            upnl += row_figures[row, 0]
            initial += row_figures[row, 1]
            maintenance += row_figures[row, 2]
            gross += abs(row_figures[row, 0])
            row = unit_next[row]
        unit_figures[u, 1] = upnl
        unit_figures[u, 2] = initial
        unit_figures[u, 3] = maintenance
        unit_figures[u, 4] = gross


sum_unit_rows: Any = jit(_sum_unit_rows, sum_unit_rows_reference)


def unit_rows_of(units: Ints, head: Ints, unit_next: Ints) -> tuple[Ints, Ints]:
    """(slot into ``units``, row) of every row listed in the units' row lists, all lists
    walked at once (one vectorised step per list position, as ``sum_unit_rows_reference``)."""
    slots, rows = [], []
    slot = np.arange(units.shape[0])
    row = head[units]
    live = row != NO_ROW
    slot, row = slot[live], row[live]
    while row.shape[0]:
        slots.append(slot)
        rows.append(row)
        row = unit_next[row]
        live = row != NO_ROW
        slot, row = slot[live], row[live]
    if not rows:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    return np.concatenate(slots), np.concatenate(rows)


def revalue_units_reference(
    units: Ints,
    head: Ints,
    unit_next: Ints,
    instrument: Ints,
    qty: Array,
    entry: Array,
    leverage: Array,
    mark: Array,
    contract_size: Array,
    settle_value: Array,
    n_tiers: Ints,
    floors: Array,
    mmr: Array,
    imr: Array,
    cum: Array,
    mm_slope: Array,
    im_slope: Array,
    row_figures: Array,
    unit_figures: Array,
) -> None:
    """Every row listed by ``units`` revalued at the marks (``revalue_rows_reference``),
    then each unit's uPnL, IM, MM and gross summed over its rows in row order: the order,
    hence the sums to the last bit, of a full revaluation (``revalue_linear``), whatever
    order the unit's list is in. Collateral is left as it is."""
    slots, rows = unit_rows_of(units, head, unit_next)
    revalue_rows_reference(
        rows, instrument, qty, entry, leverage, mark, contract_size, settle_value, n_tiers,
        floors, mmr, imr, cum, mm_slope, im_slope, row_figures,
    )  # fmt: skip
    order = np.lexsort((rows, slots))  # by unit, then row: bincount adds in array order
    slots, rows = slots[order], rows[order]
    n = units.shape[0]
    values = row_figures[rows]
    for k in range(3):
        unit_figures[units, 1 + k] = np.bincount(slots, weights=values[:, k], minlength=n)
    unit_figures[units, 4] = np.bincount(slots, weights=np.abs(values[:, 0]), minlength=n)


def _sorted_rows(
    u: Any, head: Any, unit_next: Any, listed: Any
) -> Any:  # pragma: no cover - compiled by numba, inlined into the kernels over whole units
    """The rows of unit ``u`` into ``listed`` (room for a row per instrument), sorted by
    row id as its list is walked (insertion sort: a unit has a few rows); returns how
    many. Summed in that order, a unit's figures are those of the full revaluation."""
    count = 0
    r = head[u]
    while r != NO_ROW:
        at = count
        while at > 0 and listed[at - 1] > r:
            listed[at] = listed[at - 1]
            at -= 1
        listed[at] = r
        count += 1
        r = unit_next[r]
    return count


sorted_rows: Any = compiled(_sorted_rows, inline=True)


def _revalue_units(
    units: Any,
    head: Any,
    unit_next: Any,
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
    unit_figures: Any,
) -> None:  # pragma: no cover - compiled by numba; checked against the reference
    listed = np.empty(contract_size.shape[0], dtype=np.intp)  # a unit: a row per instrument
    for k in range(units.shape[0]):
        u = units[k]
        count = sorted_rows(u, head, unit_next, listed)
        total_upnl = total_initial = total_maintenance = total_gross = 0.0
        for j in range(count):
            r = listed[j]
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
            # As revalue_linear: the figures as stored, added in row order from 0.
            total_upnl += row_figures[r, 0]
            total_initial += row_figures[r, 1]
            total_maintenance += row_figures[r, 2]
            total_gross += abs(row_figures[r, 0])
        unit_figures[u, 1] = total_upnl
        unit_figures[u, 2] = total_initial
        unit_figures[u, 3] = total_maintenance
        unit_figures[u, 4] = total_gross


revalue_units_loops: Any = jit(_revalue_units, revalue_units_reference)
"""``revalue_units_loops(units, head, unit_next, instrument, qty, entry, leverage, mark,
contract_size, settle_value, n_tiers, floors, mmr, imr, cum, mm_slope, im_slope,
row_figures, unit_figures)``: ``revalue_units_reference``, one walk per unit."""
