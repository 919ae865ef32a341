"""Fused kernels of the auto-deleveraging queue, with the numpy path as their reference:
the score and each account's live quantile here, a scenario's queues in
:mod:`monitor.solvency._queue_kernels`.

Why kernels and how they are checked: :mod:`monitor.solvency._kernels`. The score is the
venues' published one (:mod:`monitor.solvency._adl`); a queue is one contract and side,
``key = instrument x 2 + (1 if short)``. Ties in score keep the rows' order. A position's
values at its entry and at the mark (``PositionTerms``, as
:func:`monitor.solvency._copy_kernels.position_values_reference`) are worked out where a
kernel reads them, not kept: two arrays of 8 bytes a position otherwise.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from monitor.book import Index
from monitor.solvency._copy_kernels import COPY_IDS, position_values_reference, values_one
from monitor.solvency._gate import OPEN, SLICE, CycleGate, jit, resume

__all__ = [
    "PositionTerms",
    "live_quantiles",
    "live_quantiles_reference",
    "score_one",
    "score_reference",
    "upnl_one",
    "warm_up_adl",
]

Array = NDArray[np.float64]


class PositionTerms(NamedTuple):
    """What a position's values are worked out from: its average entry, and per
    instrument whether it is inverse, its contract size, its settle asset's value and its
    mark."""

    row_entry: Array
    is_inverse: NDArray[np.bool_]
    contract_size: Array
    settle_value: Array
    mark: Array

    def upnl(self, row_upnl: Array, row_instrument: Index, row_qty: Array) -> Array:
        """``row_upnl``, or when it is empty (``BookState.row_upnl`` of a linear book) each
        position's uPnL at the mark, ``q x cs x (mark - entry) x settle value``, as the
        engine's revaluation works it out."""
        if row_upnl.shape[0] or not row_qty.shape[0]:
            return row_upnl
        i = row_instrument
        upnl: Array = (
            row_qty * self.contract_size[i] * (self.mark[i] - self.row_entry) * self.settle_value[i]
        )
        return upnl

    def values(self, row_instrument: Index, row_qty: Array) -> tuple[Array, Array]:
        """Per position ``|value at the entry|`` and the signed value at the mark."""
        return position_values_reference(
            row_instrument, row_qty, self.row_entry, self.is_inverse, self.contract_size,
            self.settle_value, self.mark,
        )  # fmt: skip


def score_reference(
    upnl: Array, entry_value: Array, mark_value: Array, unit_equity: Array
) -> Array:
    """The published score per position; -inf when the unit's equity is not positive
    or the score is not finite (not a candidate)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        pnl_pct = np.where(entry_value > 0.0, upnl / entry_value, 0.0)
        leverage = np.abs(mark_value) / unit_equity
        score = np.where(pnl_pct >= 0.0, pnl_pct * leverage, pnl_pct / leverage)
    result: Array = np.where((unit_equity > 0.0) & np.isfinite(score), score, -np.inf)
    return result


def _score(upnl: float, entry_value: float, mark_value: float, equity: float) -> float:
    if not equity > 0.0:
        return -math.inf
    pnl_pct = upnl / entry_value if entry_value > 0.0 else 0.0
    leverage = abs(mark_value) / equity
    score = pnl_pct * leverage if pnl_pct >= 0.0 else pnl_pct / leverage
    return score if math.isfinite(score) else -math.inf


def _upnl(
    row_upnl: Any, r: int, q: float, entry: float, cs: float, mark: float, settle_value: float
) -> float:  # pragma: no cover - compiled by numba; checked through its callers
    """Row ``r``'s uPnL: kept, or (``row_upnl`` empty) worked out as ``PositionTerms.upnl``,
    in the engine's order of operations (``monitor.engine._kernels._linear``)."""
    if row_upnl.shape[0]:
        return float(row_upnl[r])
    return q * cs * (mark - entry) * settle_value


def live_quantiles_reference(
    row_unit: Index,
    row_instrument: Index,
    row_qty: Array,
    row_upnl: Array,
    terms: PositionTerms,
    unit_equity: Array,
    unit_account: Index,
    n_accounts: int,
) -> Array:
    """Per account its highest rank quantile over its candidate positions (rank 1 the
    lowest score of its queue, quantile = rank / holders); NaN when it has none."""
    entry_value, mark_value = terms.values(row_instrument, row_qty)
    upnl = terms.upnl(row_upnl, row_instrument, row_qty)
    score = score_reference(upnl, entry_value, mark_value, unit_equity[row_unit])
    candidate = np.isfinite(score)
    key = (row_instrument * 2 + (row_qty < 0.0))[candidate]
    cand_score = score[candidate]
    n = key.shape[0]
    rank = np.empty(n)
    if n:
        order = np.lexsort((cand_score, key))
        sorted_key = key[order]
        starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
        sizes = np.diff(np.r_[starts, n])
        position = np.arange(n) - np.repeat(starts, sizes) + 1
        rank[order] = position / np.repeat(sizes, sizes)
    best = np.full(n_accounts, -1.0)
    np.maximum.at(best, unit_account[row_unit[candidate]], rank)
    result: Array = np.where(best >= 0.0, best, np.nan)
    return result


def _row_score(
    r: int,
    row_unit: Any,
    row_instrument: Any,
    row_qty: Any,
    row_upnl: Any,
    row_entry: Any,
    is_inverse: Any,
    contract_size: Any,
    settle_value: Any,
    mark: Any,
    unit_equity: Any,
) -> float:  # pragma: no cover - compiled by numba; checked through its callers
    """Row ``r``'s score now (-inf: not a candidate)."""
    i, q = row_instrument[r], row_qty[r]
    cs, sv = contract_size[i], settle_value[i]
    entry_value, mark_value = values_one(q, row_entry[r], is_inverse[i], cs, sv, mark[i])
    upnl = upnl_one(row_upnl, r, q, row_entry[r], cs, mark[i], sv)
    score: float = score_one(upnl, entry_value, mark_value, unit_equity[row_unit[r]])
    return score


def _live_quantiles(
    flag: Any,
    progress: Any,
    row_unit: Any,
    row_instrument: Any,
    row_qty: Any,
    row_upnl: Any,
    row_entry: Any,
    is_inverse: Any,
    contract_size: Any,
    settle_value: Any,
    mark: Any,
    unit_equity: Any,
    unit_account: Any,
    starts: Any,
    members: Any,
    best: Any,
) -> bool:  # pragma: no cover - compiled by numba; checked against the reference
    # A position's queue is 2 x its instrument + 1 if short, and its score, are worked out
    # where they are used rather than kept (8 bytes a position each): a score is worked
    # out again in each of the three phases, not held for all rows.
    n_rows, n_keys = row_unit.shape[0], starts.shape[0] - 1
    terms = (row_unit, row_instrument, row_qty, row_upnl, row_entry, is_inverse,
             contract_size, settle_value, mark, unit_equity)  # fmt: skip
    if progress[0] == 0:  # the queues' sizes
        r = progress[1]
        while r < n_rows:
            if _row_score_nb(r, *terms) > -math.inf:
                starts[2 * row_instrument[r] + (1 if row_qty[r] < 0.0 else 0) + 1] += 1
            r += 1
            if (r & SLICE) == 0 and flag[0] != 0:
                progress[1] = r
                return False
        for k in range(n_keys):
            starts[k + 1] += starts[k]
        progress[0], progress[1] = 1, 0
    if progress[0] == 1:  # the candidates bucketed by queue, in row order
        fill = starts[:-1].copy()
        for r in range(n_rows):
            if _row_score_nb(r, *terms) > -math.inf:
                k = 2 * row_instrument[r] + (1 if row_qty[r] < 0.0 else 0)
                members[fill[k]] = r
                fill[k] += 1
        progress[0], progress[1] = 2, 0
    k = progress[1]  # each queue ranked by score; ties keep the rows' order
    while k < n_keys:
        queue = members[starts[k] : starts[k + 1]]
        n = queue.shape[0]
        queue_score = np.empty(n)
        for t in range(n):
            queue_score[t] = _row_score_nb(queue[t], *terms)
        order = np.argsort(queue_score)
        i = 0
        while i < n:
            j = i + 1
            while j < n and queue_score[order[j]] == queue_score[order[i]]:
                j += 1
            if j - i > 1:
                order[i:j] = np.sort(order[i:j])
            for t in range(i, j):
                quantile = (t + 1) / n
                a = unit_account[row_unit[queue[order[t]]]]
                if not best[a] >= quantile:  # NaN or lower
                    best[a] = quantile
            i = j
        k += 1
        if flag[0] != 0:
            progress[1] = k
            return False
    return True


def live_quantiles(
    row_unit: Index,
    row_instrument: Index,
    row_qty: Array,
    row_upnl: Array,
    terms: PositionTerms,
    unit_equity: Array,
    unit_account: Index,
    n_accounts: int,
    *,
    gate: CycleGate = OPEN,
) -> Array:
    """:func:`live_quantiles_reference`, pausing at a closed ``gate``. The queues'
    members are 4-byte row numbers (a copy's rows fit them, as the book's ids do); no
    score is kept per row."""
    n_rows = row_unit.shape[0]
    n_keys = 2 * int(row_instrument.max()) + 2 if n_rows else 2
    best = np.full(n_accounts, np.nan)
    resume(
        _live_quantiles_nb, gate, row_unit, row_instrument, row_qty, row_upnl, *terms,
        unit_equity, unit_account,
        np.zeros(n_keys + 1, dtype=np.intp), np.empty(n_rows, dtype=COPY_IDS), best,
    )  # fmt: skip
    return best


#: One row's ADL score and uPnL, compiled; also called by the scenario queues' kernel.
score_one: Any = jit(_score)
upnl_one: Any = jit(_upnl)
_row_score_nb = jit(_row_score)
_live_quantiles_nb = jit(_live_quantiles)


def warm_up_adl() -> None:
    """Compile (or load from the disk cache) the live quantiles' kernels on tiny inputs."""
    ids = np.zeros(1, dtype=COPY_IDS)  # the copy's ids: the types the service calls with
    one = np.ones(1)
    terms = PositionTerms(one, np.zeros(1, dtype=np.bool_), one, one, one)
    live_quantiles(ids, ids, one, one, terms, one, ids, 1)
