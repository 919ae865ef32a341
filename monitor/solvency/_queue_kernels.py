"""Fused kernels of the queues that absorb a scenario's shortfall, with the numpy path as
their reference (the score and how positions are valued: :mod:`monitor.solvency._adl_kernels`).

:func:`scenario_heads` finds, for the worst scenario, each queue's shortfall (the bankrupt
units' debt split by the positions' shares) and the first positions of the queue on the
other side, without keeping a score per position.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.book import Index
from monitor.models import INVERSE, LINEAR
from monitor.solvency._adl_kernels import PositionTerms, score_one, score_reference, upnl_one
from monitor.solvency._copy_kernels import COPY_IDS, values_one
from monitor.solvency._gate import OPEN, SLICE, CycleGate, jit, resume

__all__ = [
    "queue_heads_reference",
    "scenario_heads",
    "scenario_heads_reference",
    "scenario_scores_reference",
    "warm_up_queues",
]

Array = NDArray[np.float64]


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


def scenario_heads_reference(
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
    length: int,
) -> tuple[Array, NDArray[np.int64], Index, Array]:
    """For one scenario: the shortfall per queue (:func:`scenario_scores_reference`) and,
    for the queue opposite each one with a shortfall, its number of candidates, its first
    ``length`` rows (:func:`queue_heads_reference`) and their scores (NaN past the end)."""
    shortfall, score = scenario_scores_reference(
        row_unit, row_instrument, row_qty, row_upnl, terms, row_share, kind, values, moves,
        equity, bankrupt, debt, uncovered,
    )  # fmt: skip
    wanted = np.zeros(shortfall.shape[0], dtype=np.bool_)
    wanted[np.flatnonzero(shortfall > 0.0) ^ 1] = True
    holders, heads = queue_heads_reference(row_instrument, row_qty, score, wanted, length)
    head_score: Array = np.full(heads.shape, np.nan)
    head_score[heads >= 0] = score[heads[heads >= 0]]
    return shortfall, holders, heads, head_score


def _scenario_heads(
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
    wanted: Any,
    holders: Any,
    heads: Any,
    head_score: Any,
    kept: Any,
) -> bool:  # pragma: no cover - compiled by numba; checked against the reference
    n_rows, length = row_unit.shape[0], heads.shape[1]
    if progress[0] == 0:  # the shortfall of each queue: the bankrupt units' debt, shared
        r = progress[1]
        while r < n_rows:
            u = row_unit[r]
            if bankrupt[u]:
                k = 2 * row_instrument[r] + (1 if row_qty[r] < 0.0 else 0)
                shortfall[k] += debt[u] * row_share[r] * uncovered
            r += 1
            if (r & SLICE) == 0 and flag[0] != 0:
                progress[1] = r
                return False
        for k in range(shortfall.shape[0]):  # the side that absorbs it
            if shortfall[k] > 0.0:
                wanted[k ^ 1] = True
        progress[0], progress[1] = 1, 0
    # Each wanted queue keeps its best rows by insertion, with their scores (a row goes
    # after the rows of an equal score already kept: ties keep the rows' order). A score
    # is worked out where it is used, not kept for every row.
    r = progress[1]
    while r < n_rows:
        u, i, q = row_unit[r], row_instrument[r], row_qty[r]
        k = 2 * i + (1 if q < 0.0 else 0)
        if wanted[k] and not bankrupt[u]:
            cs, sv = contract_size[i], settle_value[i]
            entry_value, mark_value = values_one(q, row_entry[r], is_inverse[i], cs, sv, mark[i])
            change = q * values[i]
            if kind[i] == LINEAR:
                mark_value = mark_value * (1.0 + moves[i])
            elif kind[i] == INVERSE:
                mark_value = mark_value / (1.0 + moves[i])
            else:
                mark_value = mark_value + change
            upnl = upnl_one(row_upnl, r, q, row_entry[r], cs, mark[i], sv)
            x = score_one(upnl + change, entry_value, mark_value, equity[u])
            if x > -math.inf:
                holders[k] += 1
                n = kept[k]
                if n < length or x > head_score[k, length - 1]:
                    j = n if n < length else length - 1
                    while j > 0 and x > head_score[k, j - 1]:
                        if j < length:
                            heads[k, j] = heads[k, j - 1]
                            head_score[k, j] = head_score[k, j - 1]
                        j -= 1
                    heads[k, j] = r
                    head_score[k, j] = x
                    if n < length:
                        kept[k] = n + 1
        r += 1
        if (r & SLICE) == 0 and flag[0] != 0:
            progress[1] = r
            return False
    return True


def scenario_heads(
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
    length: int,
    *,
    gate: CycleGate = OPEN,
) -> tuple[Array, NDArray[np.int64], Index, Array]:
    """:func:`scenario_heads_reference` in two passes that keep no score per row (24 MB
    at 3M positions), pausing at a closed ``gate``."""
    n_keys = 2 * kind.shape[0]
    shortfall, wanted = np.zeros(n_keys), np.zeros(n_keys, dtype=np.bool_)
    holders = np.zeros(n_keys, dtype=np.int64)
    heads = np.full((n_keys, length), -1, dtype=np.intp)
    head_score = np.full((n_keys, length), np.nan)
    resume(
        _scenario_heads_nb, gate, row_unit, row_instrument, row_qty, row_upnl, *terms,
        row_share, kind, values, moves, equity, bankrupt, debt, uncovered, shortfall, wanted,
        holders, heads, head_score, np.zeros(n_keys, dtype=np.int64),
    )  # fmt: skip
    return shortfall, holders, heads, head_score


_scenario_heads_nb = jit(_scenario_heads)


def warm_up_queues() -> None:
    """Compile (or load from the disk cache) the queues' kernel on tiny inputs."""
    ids = np.zeros(1, dtype=COPY_IDS)  # the copy's ids: the types the service calls with
    one = np.ones(1)
    terms = PositionTerms(one, np.zeros(1, dtype=np.bool_), one, one, one)
    kind = np.zeros(1, dtype=np.int8)
    flags = np.ones(1, dtype=np.bool_)
    scenario_heads(ids, ids, one, one, terms, one, kind, one, one, one, flags, one, 1.0, 1)
