"""Fused kernels of what a report derives from the units' debts, with the numpy path as
their reference (why kernels, and how they are checked: :mod:`monitor.solvency._kernels`):

* :func:`row_shares`: each position's share of its unit's debt, by maintenance margin;
* :func:`debt_by_base`: the units' debt split over the underlyings by those shares;
* :func:`largest`: the accounts a scenario's result lists, largest debt first.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse
from numpy.typing import NDArray

from monitor.book import Index
from monitor.solvency._gate import OPEN, SLICE, CycleGate, jit, resume

__all__ = [
    "debt_by_base",
    "debt_by_base_reference",
    "largest",
    "largest_reference",
    "row_shares",
    "row_shares_reference",
]

Array = NDArray[np.float64]


def row_shares_reference(row_unit: Index, row_maintenance: Array, n_units: int) -> Array:
    """Each open position's share of its unit: its maintenance margin over the sum of its
    unit's positions' (equal shares in a unit whose positions need none). The shares of a
    unit's positions sum to 1, so a unit's debt split by them adds up. The same in every
    scenario: computed once per stress."""
    mm = np.maximum(row_maintenance, 0.0)
    total = np.bincount(row_unit, weights=mm, minlength=n_units)[row_unit]
    count = np.bincount(row_unit, minlength=n_units)[row_unit]
    share: Array = np.where(total > 0.0, mm / np.where(total > 0.0, total, 1.0), 1.0 / count)
    return share


def _row_shares(
    flag: Any,
    progress: Any,
    row_unit: Any,
    row_maintenance: Any,
    total: Any,
    count: Any,
    share: Any,
) -> bool:  # pragma: no cover - compiled by numba; checked against the reference
    n_rows = row_unit.shape[0]
    if progress[0] == 0:  # each unit's maintenance margin and open positions
        r = progress[1]
        while r < n_rows:
            u = row_unit[r]
            total[u] += max(row_maintenance[r], 0.0)
            count[u] += 1
            r += 1
            if (r & SLICE) == 0 and flag[0] != 0:
                progress[1] = r
                return False
        progress[0], progress[1] = 1, 0
    r = progress[1]
    while r < n_rows:
        u = row_unit[r]
        share[r] = max(row_maintenance[r], 0.0) / total[u] if total[u] > 0.0 else 1.0 / count[u]
        r += 1
        if (r & SLICE) == 0 and flag[0] != 0:
            progress[1] = r
            return False
    return True


def row_shares(
    row_unit: Index,
    row_maintenance: Array,
    n_units: int,
    *,
    gate: CycleGate = OPEN,
    out: Array | None = None,
) -> Array:
    """:func:`row_shares_reference`, pausing at a closed ``gate``; into ``out`` if given,
    which may be ``row_maintenance`` itself (each share is written after the sums that
    read every margin, and reads only its own row's)."""
    share = np.empty(row_unit.shape[0]) if out is None else out
    resume(
        _row_shares_nb, gate, row_unit, row_maintenance, np.zeros(n_units),
        np.zeros(n_units, dtype=np.int32),
        share,
    )  # fmt: skip
    return share


def debt_by_base_reference(
    row_unit: Index,
    row_instrument: Index,
    instrument_base: Index,
    row_share: Array,
    debt: Array,
    n_bases: int,
) -> Array:
    """The units' debt split over the underlyings of their positions' instruments
    (``instrument_base``) by the positions' shares (:func:`row_shares_reference`):
    underlyings x scenarios."""
    n_units = debt.shape[0]
    row_base = instrument_base[row_instrument]
    split = scipy.sparse.csr_array((row_share, (row_base, row_unit)), shape=(n_bases, n_units))
    return np.asarray(split @ debt, dtype=np.float64).reshape(n_bases, debt.shape[1])


def _debt_by_base(
    flag: Any,
    progress: Any,
    row_unit: Any,
    row_instrument: Any,
    instrument_base: Any,
    row_share: Any,
    debt: Any,
    by_base: Any,
) -> bool:  # pragma: no cover - compiled by numba; checked against the reference
    n_scen = debt.shape[1]
    r = progress[1]
    while r < row_unit.shape[0]:
        u, w = row_unit[r], row_share[r]
        b = instrument_base[row_instrument[r]]
        for s in range(n_scen):
            by_base[b, s] += w * debt[u, s]
        r += 1
        if (r & SLICE) == 0 and flag[0] != 0:
            progress[1] = r
            return False
    return True


def debt_by_base(
    row_unit: Index,
    row_instrument: Index,
    instrument_base: Index,
    row_share: Array,
    debt: Array,
    n_bases: int,
    *,
    gate: CycleGate = OPEN,
) -> Array:
    """:func:`debt_by_base_reference`, pausing at a closed ``gate`` (no array per
    position: the underlying is looked up in the pass)."""
    by_base = np.zeros((n_bases, debt.shape[1]))
    resume(
        _debt_by_base_nb, gate, row_unit, row_instrument, instrument_base, row_share, debt,
        by_base,
    )  # fmt: skip
    return by_base


def largest_reference(values: Array, top: int, among: NDArray[np.int32] | None) -> Index:
    """Indices of the ``top`` largest positive ``values`` (only where ``among`` > 0 when
    given), largest first, equal values in index order."""
    keep = values > 0.0
    if among is not None:
        keep &= among > 0
    positive = np.flatnonzero(keep)
    order: Index = positive[np.argsort(-values[positive], kind="stable")][: max(top, 0)]
    return order


def _largest(values: Any, among: Any, restrict: bool, heap: Any, held: Any) -> int:
    # A min-heap of the best ``heap.size`` so far, its root the one to drop first: the
    # smallest value, of equal values the later index (a later equal value never enters).
    k, n = heap.shape[0], 0
    if k == 0:
        held[0] = 0
        return 0
    for i in range(values.shape[0]):
        v = values[i]
        if not v > 0.0 or (restrict and among[i] <= 0):
            continue
        if n < k:
            c = n  # sift up
            n += 1
            while c > 0:
                p = (c - 1) // 2
                if values[heap[p]] < v or (values[heap[p]] == v and heap[p] > i):
                    break
                heap[c] = heap[p]
                c = p
            heap[c] = i
        elif v > values[heap[0]]:
            c = 0  # sift down from the root
            while True:
                child = 2 * c + 1
                if child >= n:
                    break
                right = child + 1
                if right < n:
                    a, b = values[heap[right]], values[heap[child]]
                    if a < b or (a == b and heap[right] > heap[child]):
                        child = right
                w = values[heap[child]]
                if v < w or (v == w and i > heap[child]):
                    break
                heap[c] = heap[child]
                c = child
            heap[c] = i
    held[0] = n
    return n


def largest(values: Array, top: int, among: NDArray[np.int32] | None = None) -> Index:
    """:func:`largest_reference` in one pass holding ``top`` indices (the numpy path sorts
    a copy of every positive value: about 30 MB at a million accounts in a crash)."""
    heap, held = np.zeros(max(top, 0), dtype=np.intp), np.zeros(1, dtype=np.intp)
    restrict = among is not None
    _largest_nb(values, among if among is not None else np.zeros(1, np.int32), restrict, heap, held)
    found = heap[: int(held[0])]
    order: Index = found[np.lexsort((found, -values[found]))]
    return order


_row_shares_nb = jit(_row_shares)
_debt_by_base_nb = jit(_debt_by_base)
_largest_nb = jit(_largest)
