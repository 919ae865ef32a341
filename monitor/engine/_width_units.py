"""Width classes of the kernels over whole units: the price bands' revaluation.

A banded tick revalues every row of the units it flagged and sums them along each unit's
rows in row order (``revalue_units``); most ticks judge those units next, and
``revalue_and_judge`` does both in one walk, judging a unit while its figures are at
hand (35 ns a unit read back from a million-row table otherwise). Each width class runs
the rows through the table of ``monitor.engine._width_kernels`` (13 ms against 22 for
the loops, for the 160,000 units in liquidation or bankrupt of the engine bench's book
after its cycles); fewer units than instruments, or a layout past the widest class,
run the loops (``monitor.engine._unit_kernels.revalue_units_loops``, then
``monitor.engine._judge.judge``). Same arithmetic, order of addition and results.

``compile_every_width`` gives every class of both modules the signatures any met (the
warm-up).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.book import Index
from monitor.compiled import HAVE_NUMBA, compiled
from monitor.engine import _width_kernels
from monitor.engine._judge import _unit_state_one, judge
from monitor.engine._kernels import revalue_linear_loops, revalue_rows_loops
from monitor.engine._unit_kernels import revalue_units_loops, sorted_rows
from monitor.engine._width_kernels import _class_of, _class_row_one, _table_one

__all__ = ["compile_every_width", "revalue_and_judge", "revalue_units"]


def _unit_sums(
    width: Any,
    u: Any,
    head: Any,
    unit_next: Any,
    listed: Any,
    instrument: Any,
    qty: Any,
    entry: Any,
    leverage: Any,
    table: Any,
    row_figures: Any,
    unit_figures: Any,
) -> Any:  # pragma: no cover - compiled by numba, inlined: ``width`` a constant there
    """Revalue every row of unit ``u`` from the class ``table``, set the unit's sums
    (uPnL, IM, MM, |uPnL|) added in row order from 0 as ``revalue_linear`` adds them
    (``monitor.engine._unit_kernels.sorted_rows`` into ``listed``), and return them."""
    total_upnl = total_initial = total_maintenance = total_gross = 0.0
    for j in range(sorted_rows(u, head, unit_next, listed)):
        r = listed[j]
        upnl, initial, maintenance = _class_row_one(
            width, qty[r], entry[r], leverage[r], instrument[r], table
        )
        row_figures[r, 0] = upnl
        row_figures[r, 1] = initial
        row_figures[r, 2] = maintenance
        total_upnl += upnl
        total_initial += initial
        total_maintenance += maintenance
        total_gross += abs(upnl)
    unit_figures[u, 1] = total_upnl
    unit_figures[u, 2] = total_initial
    unit_figures[u, 3] = total_maintenance
    unit_figures[u, 4] = total_gross
    return total_upnl, total_initial, total_maintenance, total_gross


_unit_sums_one: Any = compiled(_unit_sums, numpy_errors=True, inline=True)


def _unit_class_kernels(width: int) -> tuple[Any, Any]:
    """(``revalue_units``, ``revalue_and_judge``) comparing ``width`` floors, compiled
    (closures over ``width`` alone, as ``monitor.engine._width_kernels._class_kernels``)."""

    def units_of(
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
        table = _table_one(
            width, mark, contract_size, settle_value, floors, mmr, imr, cum, mm_slope, im_slope
        )
        listed = np.empty(contract_size.shape[0], dtype=np.intp)  # a row per instrument
        for k in range(units.shape[0]):
            u = units[k]
            _unit_sums_one(
                width, u, head, unit_next, listed, instrument, qty, entry, leverage, table,
                row_figures, unit_figures,
            )  # fmt: skip

    def units_judged(
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
        state: Any,
        transitions: Any,
        open_positions: Any,
        margin_call_ratio: Any,
        band: Any,
        changed: Any,
        previous: Any,
    ) -> Any:  # pragma: no cover - compiled by numba; checked against the reference
        table = _table_one(
            width, mark, contract_size, settle_value, floors, mmr, imr, cum, mm_slope, im_slope
        )
        listed = np.empty(contract_size.shape[0], dtype=np.intp)  # a row per instrument
        count = 0
        for k in range(units.shape[0]):
            u = units[k]
            upnl, initial, maintenance, gross = _unit_sums_one(
                width, u, head, unit_next, listed, instrument, qty, entry, leverage, table,
                row_figures, unit_figures,
            )  # fmt: skip
            old = state[u]  # then judged while its figures are at hand, as judge does
            new = _unit_state_one(
                old, unit_figures[u, 0], upnl, initial, maintenance, gross, open_positions[u],
                margin_call_ratio, band,
            )  # fmt: skip
            if new != old:
                state[u] = new
                transitions[u] += 1
                changed[count] = u
                previous[count] = old
                count += 1
        return count

    return compiled(units_of, numpy_errors=True), compiled(units_judged, numpy_errors=True)


if HAVE_NUMBA:
    revalue_units_4, units_judged_4 = _unit_class_kernels(4)
    revalue_units_8, units_judged_8 = _unit_class_kernels(8)
    revalue_units_12, units_judged_12 = _unit_class_kernels(12)
    revalue_units_16, units_judged_16 = _unit_class_kernels(16)
    _UNITS: tuple[Any, ...] = (
        revalue_units_4, revalue_units_8, revalue_units_12, revalue_units_16
    )  # fmt: skip
    _JUDGED: tuple[Any, ...] = (units_judged_4, units_judged_8, units_judged_12, units_judged_16)


def revalue_units(
    units: Index,
    head: Index,
    unit_next: Index,
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
    unit_figures: NDArray[np.float64],
) -> None:
    """``revalue_units_reference`` (``monitor.engine._unit_kernels``), fused: the width
    class's kernel for ``floors`` (fewer units than instruments: the loops, as
    ``revalue_rows`` for fewer rows)."""
    k = _class_of(floors, units.shape[0]) if HAVE_NUMBA else -1
    kernel: Any = revalue_units_loops if k < 0 else _UNITS[k]
    kernel(
        units, head, unit_next, instrument, qty, entry, leverage, mark, contract_size,
        settle_value, n_tiers, floors, mmr, imr, cum, mm_slope, im_slope, row_figures,
        unit_figures,
    )  # fmt: skip


def revalue_and_judge(
    units: Index,
    head: Index,
    unit_next: Index,
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
    unit_figures: NDArray[np.float64],
    state: NDArray[np.int8],
    transitions: NDArray[np.int64],
    open_positions: Index,
    margin_call_ratio: float,
    band: float,
    changed: Index,
    previous: NDArray[np.int8],
) -> int:
    """:func:`revalue_units`, then ``monitor.engine._judge.judge`` of the same units, in
    one walk: each unit judged while its figures are at hand (the class kernels), or the
    two steps one after the other (the loops). Same figures, states and transitions, in
    the same order; returns how many units changed state."""
    revalued = (
        units, head, unit_next, instrument, qty, entry, leverage, mark, contract_size,
        settle_value, n_tiers, floors, mmr, imr, cum, mm_slope, im_slope, row_figures,
        unit_figures,
    )  # fmt: skip
    rule = (margin_call_ratio, band, changed, previous)
    k = _class_of(floors, units.shape[0]) if HAVE_NUMBA else -1
    if k >= 0:
        return int(_JUDGED[k](*revalued, state, transitions, open_positions, *rule))
    revalue_units_loops(*revalued)
    return int(judge(units, state, transitions, unit_figures, open_positions, *rule))


def compile_every_width() -> None:
    """Compile each width class's kernels, and the generic ones, for every signature any
    of them was compiled for (``monitor.engine._warm.warm_up`` runs books of one class;
    a venue's brackets may need another)."""
    if not HAVE_NUMBA:
        return
    for family in (
        (*_width_kernels._LINEAR, revalue_linear_loops),
        (*_width_kernels._ROWS, revalue_rows_loops),
        (*_UNITS, revalue_units_loops),
        _JUDGED,
    ):
        signatures = {sig for kernel in family for sig in kernel.signatures}
        for kernel in family:
            for sig in signatures - set(kernel.signatures):
                kernel.compile(sig)
