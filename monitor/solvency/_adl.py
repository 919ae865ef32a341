"""The auto-deleveraging queue, ranked as the venues publish it.

When a bankrupt position's shortfall exceeds what the insurance fund covers, the venue
closes profitable positions on the other side of the same contract at the bankruptcy
price, highest score first. The published score (BitMEX, "What is Auto-Deleveraging"
(support article); Binance Futures, "What is Auto-Deleveraging (ADL)" (FAQ); Bybit,
"Auto-Deleveraging (ADL)" (help centre); OKX, "Auto-deleveraging" (help centre)), per
position, long and short positions of each contract ranked separately:

    score = PnL% x effective leverage    if PnL% >= 0
    score = PnL% / effective leverage    if PnL% <  0
    PnL% = unrealised PnL / |position value at the average entry|
    effective leverage = |position value at the mark| / margin-unit equity

(BitMEX writes the leverage as mark value / (mark value - bankruptcy value), which is
the same for an isolated position; Binance and Bybit divide by the account's margin
balance including unrealised PnL, as here for a cross unit). Venues show the rank as a
quantile in 20 % steps; here ``quantile = rank / holders`` with rank 1 the lowest
score, so the head of the queue has quantile 1. Units with equity <= 0 are the ones
being deleveraged against, not candidates.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from monitor.schema import AdlCandidate, AdlQueue
from monitor.solvency._adl_kernels import live_quantiles, score_reference
from monitor.solvency._gate import OPEN, CycleGate
from monitor.solvency._queue_kernels import scenario_heads
from monitor.solvency._state import BookState, StressFigures

__all__ = ["account_quantiles", "adl_queues", "adl_scores", "quantiles"]

Array = NDArray[np.float64]


def adl_scores(upnl: Array, entry_value: Array, mark_value: Array, unit_equity: Array) -> Array:
    """The published score per position (see the module docstring); -inf when the
    unit's equity is not positive (not a candidate)."""
    return score_reference(upnl, entry_value, mark_value, unit_equity)


def quantiles(key: NDArray[np.intp], score: Array) -> Array:
    """Rank quantile of each score within its queue ``key`` (1 = head of the queue)."""
    n = key.shape[0]
    if n == 0:
        return np.zeros(0)
    order = np.lexsort((score, key))
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    sizes = np.diff(np.r_[starts, n])
    start_of = np.repeat(starts, sizes)
    rank = np.arange(n) - start_of + 1
    result = np.empty(n)
    result[order] = rank / np.repeat(sizes, sizes)
    return result


def account_quantiles(state: BookState, *, gate: CycleGate = OPEN) -> Array:
    """Per account (dense id): its highest ADL quantile at the current figures, NaN when
    it holds no candidate position (one fused kernel, no GIL)."""
    result: Array = live_quantiles(
        state.row_unit,
        state.row_instrument,
        state.row_qty,
        state.row_upnl,
        state.position_terms(),
        state.unit_equity,
        state.unit_account,
        len(state.accounts),
        gate=gate,
    )
    return result


def adl_queues(
    state: BookState,
    figures: StressFigures,
    s: int,
    fund: float,
    queue_length: int,
    *,
    gate: CycleGate = OPEN,
) -> tuple[AdlQueue, ...]:
    """The queues that absorb the bad debt of scenario ``s`` beyond ``fund``.

    Each bankrupt unit's debt is split over its positions by maintenance margin; the
    part the fund does not cover (pro rata) is the shortfall of that contract and side,
    absorbed by the opposite side's candidates scored at the scenario's prices.
    """
    if figures.equity is None:
        raise ValueError("adl_queues needs the shocked equity: stress with keep_equity=True")
    total = float(figures.debt[:, s].sum())
    uncovered = max(0.0, total - fund) / total if total > 0.0 else 0.0
    shortfall, holders, heads, head_score = scenario_heads(
        state.row_unit,
        state.row_instrument,
        state.row_qty,
        state.row_upnl,
        state.position_terms(),
        state.row_share,
        state.terms.kind,
        np.ascontiguousarray(figures.values[:, s]),
        np.ascontiguousarray(figures.moves[:, s]),
        np.ascontiguousarray(figures.equity[:, s]),
        np.ascontiguousarray(figures.bankrupt[:, s]),
        np.ascontiguousarray(figures.debt[:, s]),
        uncovered,
        queue_length,
        gate=gate,
    )
    queues: list[AdlQueue] = []
    for bad in np.flatnonzero(shortfall > 0.0).tolist():
        other = bad ^ 1
        kept = heads[other] >= 0
        queues.append(
            AdlQueue(
                symbol=state.symbols[other // 2],
                side="short" if other % 2 else "long",
                shortfall=float(shortfall[bad]),
                candidates=_head(
                    state, heads[other][kept], head_score[other][kept], int(holders[other])
                ),
            )
        )
    return tuple(queues)


def _head(
    state: BookState, members: NDArray[np.intp], scores: Array, n: int
) -> tuple[AdlCandidate, ...]:
    """The head of a queue of ``n`` holders (``members``, highest score first, with their
    ``scores``) with their quantiles: the j-th (from 0) has rank n - j, quantile
    (n - j) / n."""
    return tuple(
        AdlCandidate(
            account=state.accounts[int(state.unit_account[state.row_unit[r]])],
            qty=float(state.row_qty[r]),
            score=float(scores[j]),
            quantile=(n - j) / n,
        )
        for j, r in enumerate(members.tolist())
    )
