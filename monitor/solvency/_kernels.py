"""Fused kernels of the book-wide stress, with the numpy path as their reference.

The stress runs in a worker thread beside the event loop. numpy releases the GIL only
inside its array loops, so a report made of a hundred numpy passes hands the GIL back and
forth with the loop's tick thousands of times and streams the same 100 MB arrays through
the caches again and again: the tick slows down while the stress runs. Each kernel here
does one of those stages in one or two passes, compiled by numba with ``nogil=True``, so
the worker holds the GIL only to call it; and each looks at a :class:`CycleGate` every
4,096 rows, so it steps aside (returns where it is, resumed by the wrapper once the gate
opens) while a cycle computes. Each has a readable numpy reference with the same
signature (``*_reference``); ``tests/unit/test_solvency_kernels.py`` checks them against
each other on random books, paused at every look. Compiled on first use and cached on
disk; the service compiles them ahead in the stress's own worker thread
(:func:`warm_up`).

Formulas: docs/solvency.md (the shocked equity ``E' = E + Q @ V``, the engine's rounding
tolerance ``monitor.states.REL_TOL``, the debt split by maintenance margin).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse
from numpy.typing import NDArray

from monitor.book import Index
from monitor.solvency._gate import OPEN, SLICE, CycleGate, jit, resume

__all__ = [
    "add_sizes",
    "add_sizes_reference",
    "stress_units",
    "stress_units_reference",
    "warm_up",
]

Array = NDArray[np.float64]


def stress_units_reference(
    row_unit: Index,
    row_instrument: Index,
    row_qty: Array,
    values: Array,
    unit_equity: Array,
    unit_scale: Array,
    unit_exposure: Array,
    asset_moves: Array,
    unit_account: Index,
    n_accounts: int,
    rel_tol: float,
) -> tuple[Array, NDArray[np.bool_], Array, Array, NDArray[np.int32]]:
    """Every unit's shocked equity (equity plus its scenario P&L), bankruptcy and debt,
    and per account the debt and the number of bankrupt units, per scenario.

    The P&L is the positions' ``Q @ V`` plus the change of the wallet's collateral that
    moves with an underlying, ``unit_exposure @ asset_moves``. A unit is bankrupt when
    its shocked equity is below zero by more than ``rel_tol`` of ``unit_scale + |P&L| +
    |collateral change|``, where ``unit_scale`` is ``|collateral| + gross + sum |q| x
    notional`` (:func:`add_sizes`): the P&L is a difference of values, so its rounding is
    relative to their size too.
    """
    n_units = unit_equity.shape[0]
    quantities = scipy.sparse.csr_array(
        (row_qty, (row_unit, row_instrument)), shape=(n_units, values.shape[0])
    )
    wallet = unit_exposure @ asset_moves
    pnl = np.asarray(quantities @ values, dtype=np.float64).reshape(n_units, values.shape[1])
    pnl = pnl + wallet
    equity = unit_equity[:, None] + pnl
    tolerance = rel_tol * (unit_scale[:, None] + np.abs(pnl) + np.abs(wallet))
    bankrupt = equity < -tolerance
    debt = np.maximum(-equity, 0.0)
    membership = scipy.sparse.csr_array(
        (np.ones(n_units), (unit_account, np.arange(n_units))), shape=(n_accounts, n_units)
    )
    account_debt = np.asarray(membership @ debt, dtype=np.float64)
    account_bankrupt = np.asarray(membership @ bankrupt.astype(np.float64)).astype(np.int32)
    return equity, bankrupt, debt, account_debt, account_bankrupt


def _stress_units(
    flag: Any,
    progress: Any,
    row_unit: Any,
    row_instrument: Any,
    row_qty: Any,
    values: Any,
    unit_equity: Any,
    unit_scale: Any,
    unit_exposure: Any,
    asset_moves: Any,
    unit_account: Any,
    rel_tol: Any,
    equity: Any,
    bankrupt: Any,
    debt: Any,
    account_debt: Any,
    account_bankrupt: Any,
) -> bool:  # pragma: no cover - compiled by numba; checked against the reference
    n_units, n_scen = unit_equity.shape[0], values.shape[1]
    n_assets = asset_moves.shape[0]
    # ``equity`` holds each unit's positions' P&L until the second pass makes it the
    # shocked equity (no array of its own for the P&L).
    if progress[0] == 0:  # the positions' P&L, scattered into their units
        r = progress[1]
        while r < row_unit.shape[0]:
            u, i, q = row_unit[r], row_instrument[r], row_qty[r]
            for s in range(n_scen):
                equity[u, s] += q * values[i, s]
            r += 1
            if (r & SLICE) == 0 and flag[0] != 0:
                progress[1] = r
                return False
        progress[0], progress[1] = 1, 0
    u = progress[1]  # each unit: its wallet's move, equity, bankruptcy, debt
    while u < n_units:
        a = unit_account[u]
        for s in range(n_scen):
            w = 0.0
            for k in range(n_assets):
                w += unit_exposure[u, k] * asset_moves[k, s]
            p = equity[u, s] + w
            e = unit_equity[u] + p
            equity[u, s] = e
            d = -e if e < 0.0 else 0.0
            debt[u, s] = d
            account_debt[a, s] += d
            if e < -(rel_tol * (unit_scale[u] + abs(p) + abs(w))):
                bankrupt[u, s] = True
                account_bankrupt[a, s] += 1
        u += 1
        if (u & SLICE) == 0 and flag[0] != 0:
            progress[1] = u
            return False
    return True


def stress_units(
    row_unit: Index,
    row_instrument: Index,
    row_qty: Array,
    values: Array,
    unit_equity: Array,
    unit_scale: Array,
    unit_exposure: Array,
    asset_moves: Array,
    unit_account: Index,
    n_accounts: int,
    rel_tol: float,
    *,
    gate: CycleGate = OPEN,
    keep_equity: bool = True,
) -> tuple[Array | None, NDArray[np.bool_], Array, Array, NDArray[np.int32]]:
    """:func:`stress_units_reference`, pausing at a closed ``gate``. Without
    ``keep_equity`` the shocked equity is not returned (None): each unit's debt is
    written over it, one array of units x scenarios less (13 MB a scenario at 1.6M
    units), for a caller that needs the debt only."""
    n_units, n_scen = unit_equity.shape[0], values.shape[1]
    equity = np.zeros((n_units, n_scen))
    bankrupt = np.zeros((n_units, n_scen), dtype=np.bool_)
    # The kernel reads each unit's equity before it writes its debt: one array can hold both.
    debt = np.empty((n_units, n_scen)) if keep_equity else equity
    account_debt = np.zeros((n_accounts, n_scen))
    account_bankrupt = np.zeros((n_accounts, n_scen), dtype=np.int32)
    resume(
        _stress_units_nb, gate, row_unit, row_instrument, row_qty, values, unit_equity,
        unit_scale, unit_exposure, asset_moves, unit_account, rel_tol, equity, bankrupt, debt,
        account_debt, account_bankrupt,
    )  # fmt: skip
    return equity if keep_equity else None, bankrupt, debt, account_debt, account_bankrupt


def add_sizes_reference(
    row_unit: Index, row_instrument: Index, row_qty: Array, notional: Array, unit_scale: Array
) -> None:
    """Add each unit's ``sum |q| x notional`` (its positions' size, ``notional`` per
    instrument ``|contract size x price|``) to its ``unit_scale``, in place: the part of
    the stress's rounding scale that is the same in every scenario."""
    sizes = np.bincount(
        row_unit, weights=np.abs(row_qty) * notional[row_instrument], minlength=unit_scale.shape[0]
    )
    unit_scale += sizes


def _add_sizes(
    flag: Any,
    progress: Any,
    row_unit: Any,
    row_instrument: Any,
    row_qty: Any,
    notional: Any,
    unit_scale: Any,
) -> bool:  # pragma: no cover - compiled by numba; checked against the reference
    r = progress[1]
    while r < row_unit.shape[0]:
        unit_scale[row_unit[r]] += abs(row_qty[r]) * notional[row_instrument[r]]
        r += 1
        if (r & SLICE) == 0 and flag[0] != 0:
            progress[1] = r
            return False
    return True


def add_sizes(
    row_unit: Index,
    row_instrument: Index,
    row_qty: Array,
    notional: Array,
    unit_scale: Array,
    *,
    gate: CycleGate = OPEN,
) -> None:
    """:func:`add_sizes_reference`, pausing at a closed ``gate``."""
    resume(_add_sizes_nb, gate, row_unit, row_instrument, row_qty, notional, unit_scale)


_stress_units_nb = jit(_stress_units)
_add_sizes_nb = jit(_add_sizes)


def warm_up() -> float:
    """Compile (or load from the disk cache) the stress kernels on tiny inputs; seconds."""
    from monitor.book import ID
    from monitor.models import ModelTable
    from monitor.schema import Instrument, Tier, TieredMargin
    from monitor.solvency._adl_kernels import warm_up_adl
    from monitor.solvency._copy_kernels import COPY_IDS, revalue_copy, take_book
    from monitor.solvency._queue_kernels import warm_up_queues
    from monitor.solvency._report_kernels import debt_by_base, largest, row_shares

    started = time.perf_counter()
    ix = np.zeros(1, dtype=np.intp)  # numpy's indices
    book_ids = np.zeros(1, dtype=ID)  # the book's columns
    ids = np.zeros(1, dtype=COPY_IDS)  # the copy's: the types the service calls with
    one = np.ones(1)
    take_book(
        book_ids, np.ones((1, 5)), book_ids, book_ids, one, one, np.ones((1, 3)), 0, 1, 4, True,
        np.empty((3, 1)), np.empty(1, dtype=COPY_IDS),
        np.empty((4, 1)), np.empty((2, 1), dtype=COPY_IDS),
    )  # fmt: skip
    _, _, debt, _, _ = stress_units(
        ids, ids, one, np.ones((1, 1)), one, one, np.ones((1, 1)), np.ones((1, 1)), ids, 1, 1e-9,
    )  # fmt: skip
    add_sizes(ids, ids, one, one, np.ones(1))
    debt_by_base(ids, ids, ix, row_shares(ids, one, 1), debt, 1)
    largest(one, 1, np.ones(1, dtype=np.int32))
    largest(one, 1)
    tier = Tier(floor=0.0, cap=1e12, mmr=0.01, imr=0.02)
    warm = Instrument(
        symbol="WARMUSDT", kind="linear", quote="USDT", base="WARM",
        margin=TieredMargin(tiers=(tier,)),
    )  # fmt: skip
    revalue_copy(
        ids, ids, one, one, one, ModelTable.from_instruments([warm]).layout, one, one,
        np.empty(1), np.empty(1), np.empty(1),
    )  # fmt: skip
    warm_up_adl()
    warm_up_queues()
    return time.perf_counter() - started
