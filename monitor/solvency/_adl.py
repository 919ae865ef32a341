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

from monitor.models import INVERSE, LINEAR
from monitor.schema import AdlCandidate, AdlQueue
from monitor.solvency._state import BookState, StressFigures

__all__ = ["account_quantiles", "adl_queues", "adl_scores", "quantiles"]

Array = NDArray[np.float64]


def adl_scores(upnl: Array, entry_value: Array, mark_value: Array, unit_equity: Array) -> Array:
    """The published score per position (see the module docstring); -inf when the
    unit's equity is not positive (not a candidate)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        pnl_pct = np.where(entry_value > 0.0, upnl / entry_value, 0.0)
        leverage = np.abs(mark_value) / unit_equity
        score = np.where(pnl_pct >= 0.0, pnl_pct * leverage, pnl_pct / leverage)
    result: Array = np.where((unit_equity > 0.0) & np.isfinite(score), score, -np.inf)
    return result


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


def _queue_key(state: BookState) -> NDArray[np.intp]:
    """instrument x 2 + (1 if short): one queue per instrument and side."""
    key: NDArray[np.intp] = state.row_instrument * 2 + (state.row_qty < 0.0)
    return key


def account_quantiles(state: BookState) -> Array:
    """Per account (dense id): its highest ADL quantile at the current figures, NaN when
    it holds no candidate position."""
    score = adl_scores(
        state.row_upnl,
        state.row_entry_value,
        state.row_mark_value,
        state.unit_equity[state.row_unit],
    )
    candidate = np.isfinite(score)
    rank = quantiles(_queue_key(state)[candidate], score[candidate])
    best = np.full(len(state.accounts), -1.0)
    np.maximum.at(best, state.unit_account[state.row_unit[candidate]], rank)
    result: Array = np.where(best >= 0.0, best, np.nan)
    return result


def adl_queues(
    state: BookState, figures: StressFigures, s: int, fund: float, queue_length: int
) -> tuple[AdlQueue, ...]:
    """The queues that absorb the bad debt of scenario ``s`` beyond ``fund``.

    Each bankrupt unit's debt is split over its positions by maintenance margin; the
    part the fund does not cover (pro rata) is the shortfall of that contract and side,
    absorbed by the opposite side's candidates scored at the scenario's prices.
    """
    unit, instrument, qty = state.row_unit, state.row_instrument, state.row_qty
    total = float(figures.debt[:, s].sum())
    uncovered = max(0.0, total - fund) / total if total > 0.0 else 0.0
    share = state.row_share()
    broke = figures.bankrupt[unit, s]
    key = _queue_key(state)
    shortfall = np.bincount(
        key[broke],
        weights=figures.debt[unit[broke], s] * share[broke] * uncovered,
        minlength=2 * len(state.symbols),
    )
    change = qty * figures.values[instrument, s]
    move = figures.moves[instrument, s]
    kind = state.terms.kind[instrument]
    mark_value = np.where(
        kind == LINEAR,
        state.row_mark_value * (1.0 + move),
        np.where(
            kind == INVERSE, state.row_mark_value / (1.0 + move), state.row_mark_value + change
        ),
    )
    score = adl_scores(
        state.row_upnl + change, state.row_entry_value, mark_value, figures.equity[unit, s]
    )
    score = np.where(broke, -np.inf, score)
    wanted = np.flatnonzero(shortfall > 0.0)
    rows = np.flatnonzero(np.isfinite(score) & np.isin(key, wanted ^ 1))
    rows = rows[np.argsort(key[rows], kind="stable")]
    bounds = np.searchsorted(key[rows], np.stack((wanted ^ 1, (wanted ^ 1) + 1)))
    queues: list[AdlQueue] = []
    for k, bad in enumerate(wanted.tolist()):
        opposite = bad ^ 1
        members = rows[bounds[0, k] : bounds[1, k]]
        queues.append(
            AdlQueue(
                symbol=state.symbols[opposite // 2],
                side="short" if opposite % 2 else "long",
                shortfall=float(shortfall[bad]),
                candidates=_head(state, members, score, queue_length),
            )
        )
    return tuple(queues)


def _head(
    state: BookState, members: NDArray[np.intp], score: Array, length: int
) -> tuple[AdlCandidate, ...]:
    """The first ``length`` of a queue, highest score first, with their quantiles: the
    j-th (from 0) of n holders has rank n - j, quantile (n - j) / n."""
    n = members.shape[0]
    if n > length:
        members = members[np.argpartition(-score[members], length - 1)[:length]]
    members = members[np.argsort(-score[members], kind="stable")]
    return tuple(
        AdlCandidate(
            account=state.accounts[int(state.unit_account[state.row_unit[r]])],
            qty=float(state.row_qty[r]),
            score=float(score[r]),
            quantile=(n - j) / n,
        )
        for j, r in enumerate(members.tolist())
    )
