"""Fused kernels of the auto-deleveraging queue, with the numpy path as their reference.

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
from monitor.models import INVERSE, LINEAR
from monitor.solvency._copy_kernels import COPY_IDS, position_values_reference, values_one
from monitor.solvency._gate import OPEN, SLICE, CycleGate, jit, resume

__all__ = [
    "PositionTerms",
    "live_quantiles",
    "live_quantiles_reference",
    "queue_heads",
    "queue_heads_reference",
    "scenario_scores",
    "scenario_scores_reference",
    "score_reference",
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
    score: Any,
    starts: Any,
    members: Any,
    best: Any,
) -> bool:  # pragma: no cover - compiled by numba; checked against the reference
    # A position's queue is 2 x its instrument + 1 if short, worked out where it is used
    # rather than kept (8 bytes a position).
    n_rows, n_keys = row_unit.shape[0], starts.shape[0] - 1
    if progress[0] == 0:  # every position's score; the queues' sizes
        r = progress[1]
        while r < n_rows:
            i, q = row_instrument[r], row_qty[r]
            entry_value, mark_value = values_one(
                q, row_entry[r], is_inverse[i], contract_size[i], settle_value[i], mark[i]
            )
            upnl = _upnl_nb(
                row_upnl, r, q, row_entry[r], contract_size[i], mark[i], settle_value[i]
            )
            score[r] = _score_nb(upnl, entry_value, mark_value, unit_equity[row_unit[r]])
            if score[r] > -math.inf:
                starts[2 * i + (1 if q < 0.0 else 0) + 1] += 1
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
            if score[r] > -math.inf:
                k = 2 * row_instrument[r] + (1 if row_qty[r] < 0.0 else 0)
                members[fill[k]] = r
                fill[k] += 1
        progress[0], progress[1] = 2, 0
    k = progress[1]  # each queue ranked by score; ties keep the rows' order
    while k < n_keys:
        queue = members[starts[k] : starts[k + 1]]
        n = queue.shape[0]
        queue_score = score[queue]
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
    members are 4-byte row numbers (a copy's rows fit them, as the book's ids do)."""
    n_rows = row_unit.shape[0]
    n_keys = 2 * int(row_instrument.max()) + 2 if n_rows else 2
    best = np.full(n_accounts, np.nan)
    resume(
        _live_quantiles_nb, gate, row_unit, row_instrument, row_qty, row_upnl, *terms,
        unit_equity, unit_account, np.empty(n_rows),
        np.zeros(n_keys + 1, dtype=np.intp), np.empty(n_rows, dtype=COPY_IDS), best,
    )  # fmt: skip
    return best


def scenario_scores_reference(
    row_unit: Index,
    row_instrument: Index,
    row_qty: Array,
    row_upnl: Array,
    terms: PositionTerms,
    row_share: Array,
    kind: NDArray[np.int8],
    values: Array,
    moves: Array,
    equity: Array,
    bankrupt: NDArray[np.bool_],
    debt: Array,
    uncovered: float,
) -> tuple[Array, Array]:
    """For one scenario (``values``, ``moves`` per instrument; ``equity``, ``bankrupt``,
    ``debt`` per unit): the shortfall per queue (each bankrupt unit's debt split by the
    shares, the ``uncovered`` fraction of it), and every position's score at the
    scenario's prices (-inf: bankrupt or not a candidate)."""
    entry_value, mark_value_now = terms.values(row_instrument, row_qty)
    change = row_qty * values[row_instrument]
    move = moves[row_instrument]
    row_kind = kind[row_instrument]
    mark_value = np.where(
        row_kind == LINEAR,
        mark_value_now * (1.0 + move),
        np.where(row_kind == INVERSE, mark_value_now / (1.0 + move), mark_value_now + change),
    )
    broke = bankrupt[row_unit]
    key = row_instrument * 2 + (row_qty < 0.0)
    shortfall = np.bincount(
        key[broke],
        weights=debt[row_unit[broke]] * row_share[broke] * uncovered,
        minlength=2 * kind.shape[0],
    ).astype(np.float64)
    upnl = terms.upnl(row_upnl, row_instrument, row_qty)
    score = score_reference(upnl + change, entry_value, mark_value, equity[row_unit])
    result: Array = np.where(broke, -np.inf, score)
    return shortfall, result


def _scenario_scores(
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
    row_share: Any,
    kind: Any,
    values: Any,
    moves: Any,
    equity: Any,
    bankrupt: Any,
    debt: Any,
    uncovered: Any,
    shortfall: Any,
    score: Any,
) -> bool:  # pragma: no cover - compiled by numba; checked against the reference
    r = progress[1]
    while r < row_unit.shape[0]:
        u, i, q = row_unit[r], row_instrument[r], row_qty[r]
        if bankrupt[u]:
            shortfall[2 * i + (1 if q < 0.0 else 0)] += debt[u] * row_share[r] * uncovered
            score[r] = -math.inf
        else:
            entry_value, mark_value = values_one(
                q, row_entry[r], is_inverse[i], contract_size[i], settle_value[i], mark[i]
            )
            change = q * values[i]
            if kind[i] == LINEAR:
                mark_value = mark_value * (1.0 + moves[i])
            elif kind[i] == INVERSE:
                mark_value = mark_value / (1.0 + moves[i])
            else:
                mark_value = mark_value + change
            upnl = _upnl_nb(
                row_upnl, r, q, row_entry[r], contract_size[i], mark[i], settle_value[i]
            )
            score[r] = _score_nb(upnl + change, entry_value, mark_value, equity[u])
        r += 1
        if (r & SLICE) == 0 and flag[0] != 0:
            progress[1] = r
            return False
    return True


def scenario_scores(
    row_unit: Index,
    row_instrument: Index,
    row_qty: Array,
    row_upnl: Array,
    terms: PositionTerms,
    row_share: Array,
    kind: NDArray[np.int8],
    values: Array,
    moves: Array,
    equity: Array,
    bankrupt: NDArray[np.bool_],
    debt: Array,
    uncovered: float,
    *,
    gate: CycleGate = OPEN,
) -> tuple[Array, Array]:
    """:func:`scenario_scores_reference`, pausing at a closed ``gate``."""
    shortfall, score = np.zeros(2 * kind.shape[0]), np.empty(row_unit.shape[0])
    resume(
        _scenario_scores_nb, gate, row_unit, row_instrument, row_qty, row_upnl, *terms,
        row_share, kind, values, moves, equity, bankrupt, debt, uncovered, shortfall, score,
    )  # fmt: skip
    return shortfall, score


def queue_heads_reference(
    row_instrument: Index, row_qty: Array, score: Array, wanted: NDArray[np.bool_], length: int
) -> tuple[NDArray[np.int64], Index]:
    """For each queue ``k`` (``2 x instrument + 1 if short``) with ``wanted[k]``: its
    number of candidates (finite score) and its first ``length`` rows, highest score
    first (-1 beyond the queue's end)."""
    key = row_instrument * 2 + (row_qty < 0.0)
    n_keys = wanted.shape[0]
    holders = np.zeros(n_keys, dtype=np.int64)
    heads = np.full((n_keys, length), -1, dtype=np.intp)
    candidate = np.isfinite(score)
    for k in np.flatnonzero(wanted).tolist():
        members = np.flatnonzero(candidate & (key == k))
        holders[k] = members.shape[0]
        ordered = members[np.argsort(-score[members], kind="stable")][:length]
        heads[k, : ordered.shape[0]] = ordered
    return holders, heads


def _queue_heads(
    flag: Any,
    progress: Any,
    row_instrument: Any,
    row_qty: Any,
    score: Any,
    wanted: Any,
    holders: Any,
    heads: Any,
    kept: Any,
) -> bool:  # pragma: no cover - compiled by numba; checked against the reference
    # One pass: each wanted queue keeps its best rows by insertion (a row goes after the
    # rows of an equal score already kept: ties keep the rows' order).
    length = heads.shape[1]
    r = progress[1]
    while r < row_qty.shape[0]:
        k = 2 * row_instrument[r] + (1 if row_qty[r] < 0.0 else 0)
        x = score[r]
        if wanted[k] and x > -math.inf:
            holders[k] += 1
            n = kept[k]
            if n < length or x > score[heads[k, length - 1]]:
                j = n if n < length else length - 1
                while j > 0 and x > score[heads[k, j - 1]]:
                    if j < length:
                        heads[k, j] = heads[k, j - 1]
                    j -= 1
                heads[k, j] = r
                if n < length:
                    kept[k] = n + 1
        r += 1
        if (r & SLICE) == 0 and flag[0] != 0:
            progress[1] = r
            return False
    return True


def queue_heads(
    row_instrument: Index,
    row_qty: Array,
    score: Array,
    wanted: NDArray[np.bool_],
    length: int,
    *,
    gate: CycleGate = OPEN,
) -> tuple[NDArray[np.int64], Index]:
    """:func:`queue_heads_reference`, pausing at a closed ``gate``."""
    n_keys = wanted.shape[0]
    holders = np.zeros(n_keys, dtype=np.int64)
    heads = np.full((n_keys, length), -1, dtype=np.intp)
    resume(
        _queue_heads_nb, gate, row_instrument, row_qty, score, wanted, holders, heads,
        np.zeros(n_keys, dtype=np.int64),
    )  # fmt: skip
    return holders, heads


_score_nb = jit(_score)
_upnl_nb = jit(_upnl)
_live_quantiles_nb = jit(_live_quantiles)
_scenario_scores_nb = jit(_scenario_scores)
_queue_heads_nb = jit(_queue_heads)


def warm_up_adl() -> None:
    """Compile (or load from the disk cache) the ADL kernels on tiny inputs."""
    ids = np.zeros(1, dtype=COPY_IDS)  # the copy's ids: the types the service calls with
    one = np.ones(1)
    terms = PositionTerms(one, np.zeros(1, dtype=np.bool_), one, one, one)
    live_quantiles(ids, ids, one, one, terms, one, ids, 1)
    kind = np.zeros(1, dtype=np.int8)
    _, score = scenario_scores(
        ids, ids, one, one, terms, one, kind, one, one, one, np.zeros(1, dtype=np.bool_), one, 1.0
    )
    queue_heads(ids, one, score, np.ones(2, dtype=np.bool_), 1)
