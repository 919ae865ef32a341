"""Fused kernels for the revaluation, each with the numpy path as its reference.

numpy needs about twenty passes over the position arrays for what is one pass of
arithmetic (tier lookup, rates, uPnL, IM, MM, the per-unit sums). For books of linear
contracts (the common case, and the one the full revaluation spends its time on), one
numba kernel does it in one pass: per open row, the bracket of its notional, its figures
(written straight into the book's row figures) and the scatter-add into its unit's
figures. ``recompute_units`` (``monitor.engine._revalue``) uses it when numba is
installed and falls back to the numpy path otherwise.

Every kernel here has a readable numpy reference next to it, and
``tests/unit/test_engine_kernels.py`` checks them against each other on random
inputs. Kernels are compiled on first use and cached on disk (``cache=True``);
``monitor.engine._warm.warm_up`` compiles them ahead, off the event loop. They release
the GIL (``nogil=True``), so a thread running one does not stall the event loop.

Formulas are those of ``monitor.models._valuation`` (Binance brackets, Deribit
size-scaled rates), ``monitor.book._contracts`` (linear uPnL) and
``monitor.book._collateral`` (wallet value after haircuts).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.book import NO_ROW
from monitor.models._layout import Layout, bracket_flat_index

__all__ = [
    "ENABLED",
    "HAVE_NUMBA",
    "brackets",
    "brackets_reference",
    "jit",
    "reset_units",
    "reset_units_reference",
    "revalue_linear",
    "revalue_linear_reference",
    "revalue_rows",
    "revalue_rows_reference",
    "sum_unit_rows",
    "sum_unit_rows_reference",
    "unit_collateral",
    "unit_collateral_reference",
]

try:  # numba is optional at import time: the numpy references always work
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency; this is the fallback
    HAVE_NUMBA = False
else:
    HAVE_NUMBA = True

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
    if not HAVE_NUMBA:
        return reference
    return njit(cache=True, nogil=True, error_model="numpy")(function)


# ---------------------------------------------------------------------- tier lookup


def brackets_reference(
    layout: Layout, instrument: NDArray[np.intp], notional: NDArray[np.float64]
) -> NDArray[np.intp]:
    """Each position's bracket (column of ``layout.floors``): brackets cover ``(floor,
    cap]``, see ``monitor.models._layout.bracket_flat_index``."""
    flat = bracket_flat_index(layout, instrument, np.ascontiguousarray(notional))
    result: NDArray[np.intp] = flat - instrument * layout.max_tiers
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
    instrument: NDArray[np.intp],
    qty: NDArray[np.float64],
    entry: NDArray[np.float64],
    leverage: NDArray[np.float64],
    unit: NDArray[np.intp],
    mark: NDArray[np.float64],
    contract_size: NDArray[np.float64],
    settle_value: NDArray[np.float64],
    n_tiers: NDArray[np.intp],
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


_bracket_one: Any = (
    njit(cache=True, nogil=True, error_model="numpy", inline="always")(_bracket_of)
    if HAVE_NUMBA
    else None
)


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


revalue_linear: Any = jit(_revalue_linear, revalue_linear_reference)


def revalue_rows_reference(
    rows: NDArray[np.intp],
    instrument: NDArray[np.intp],
    qty: NDArray[np.float64],
    entry: NDArray[np.float64],
    leverage: NDArray[np.float64],
    mark: NDArray[np.float64],
    contract_size: NDArray[np.float64],
    settle_value: NDArray[np.float64],
    n_tiers: NDArray[np.intp],
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


revalue_rows: Any = jit(_revalue_rows, revalue_rows_reference)


def sum_unit_rows_reference(
    units: NDArray[np.intp],
    head: NDArray[np.intp],
    unit_next: NDArray[np.intp],
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


# ---------------------------------------------------------------------- collateral


def unit_collateral_reference(
    unit_row: NDArray[np.intp],
    unit_account: NDArray[np.intp],
    balance: NDArray[np.float64],
    value: NDArray[np.float64],
    haircut: NDArray[np.float64],
    isolated_margin: NDArray[np.float64],
    row_instrument: NDArray[np.intp],
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
    unit_row: NDArray[np.intp],
    unit_account: NDArray[np.intp],
    balance: NDArray[np.float64],
    value: NDArray[np.float64],
    haircut: NDArray[np.float64],
    isolated_margin: NDArray[np.float64],
    row_instrument: NDArray[np.intp],
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
