"""The smallest proportional reduction that restores a margin unit to initial margin.

Rule: every position of the unit is reduced by the same fraction ``1 - k`` (an
isolated unit has one position), closed at the current mark. Closing at the mark
realises exactly the unrealised PnL, so equity ``E`` does not change while the
initial margin falls; the answer is the largest kept fraction ``k`` in [0, 1] with
``IM(k) <= E``, i.e. the smallest reduction.

Solved exactly, not by search. Under the models (``monitor.models``) a position's
IM is ``notional * rate`` with a rate constant inside a bracket (tiered, and a
chosen leverage) or growing linearly with size (size-scaled), so between the
fractions where some position crosses a bracket floor the unit's IM is
``a * k + b * k**2``. Those fractions split [0, 1] into segments; IM is evaluated
at each segment end to find the first segment whose end exceeds ``E``, ``a`` and
``b`` are read off two points inside it, and ``a * k + b * k**2 = E`` is solved in
closed form (``k = 2E / (a + sqrt(a**2 + 4bE))``, stable for ``b = 0``). IM jumps
up at a floor (a higher bracket's rate), so when the jump alone exceeds ``E`` the
answer is the floor itself. With one position and no bracket change this is the
familiar ``k = E / (notional * rate)``. Fees are ignored.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from monitor.book import Book, Index
from monitor.models import INVERSE

__all__ = ["kept_fraction", "kept_fractions"]


def kept_fraction(
    book: Book,
    instrument: Index,
    qty: NDArray[np.float64],
    mark: NDArray[np.float64],
    leverage: NDArray[np.float64],
    settle_value: NDArray[np.float64],
    equity: float,
) -> float:
    """The fraction of every position to keep (1 = no reduction, 0 = close all).

    IM comes from ``Book.values`` (any contract kind: an inverse position's IM is its
    coin notional times a rate, a short option's its size times a per-unit margin).
    """
    slot = np.zeros(instrument.shape[0], dtype=np.intp)
    kept = kept_fractions(
        book, slot, instrument, qty, mark, leverage, settle_value, np.array([equity])
    )
    return float(kept[0])


def kept_fractions(
    book: Book,
    slot: Index,
    instrument: Index,
    qty: NDArray[np.float64],
    mark: NDArray[np.float64],
    leverage: NDArray[np.float64],
    settle_value: NDArray[np.float64],
    equity: NDArray[np.float64],
) -> NDArray[np.float64]:
    """:func:`kept_fraction` of several units at once: position ``k`` belongs to unit
    ``slot[k]`` (non-decreasing: a unit's positions together), whose equity is
    ``equity[slot[k]]``. Each step runs over every unit's positions together, so the
    events of a crash pay it once. A unit's IM at a fraction is its positions' IM added
    in order."""
    n = equity.shape[0]
    counts = np.bincount(slot, minlength=n)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    kept = np.where(equity > 0.0, 1.0, 0.0)

    def initial_at(units: Index, fractions: NDArray[np.float64]) -> NDArray[np.float64]:
        """IM of unit ``units[j]`` with its positions scaled by ``fractions[j]``."""
        per = counts[units]
        pick = np.repeat(first[units] - np.cumsum(per) + per, per) + np.arange(per.sum())
        scaled = np.repeat(fractions, per)
        at_mark = mark[pick]
        _, im, _ = book.values(
            instrument[pick], qty[pick] * scaled, at_mark, leverage[pick], at_mark
        )
        owner = np.repeat(np.arange(units.shape[0]), per)
        total = np.bincount(owner, im * settle_value[pick], minlength=units.shape[0])
        return total.astype(np.float64, copy=False)

    units = np.flatnonzero(equity > 0.0)
    full = initial_at(units, np.ones(units.shape[0]))
    units = units[~(full <= equity[units])]  # the others keep everything
    if units.shape[0] == 0:
        return kept
    models = book.models
    notional = np.abs(qty) * models.contract_size.take(instrument) * mark
    if not book.contracts.linear_only:  # inverse brackets are keyed by coin notional
        inverse = book.contracts.kind.take(instrument) == INVERSE
        with np.errstate(divide="ignore", invalid="ignore"):  # an option may be worth 0
            notional = np.where(inverse, notional / (mark * mark), notional)
    with np.errstate(divide="ignore", invalid="ignore"):
        floors = models.layout.floors[instrument, 1:] / notional[:, None]
    todo = np.zeros(n, dtype=bool)
    todo[units] = True
    inside = np.isfinite(floors) & (floors > 0.0) & (floors < 1.0) & todo[slot][:, None]
    # Each unit's segment ends: its floors inside (0, 1) and 1, sorted, without repeats.
    end_unit = np.concatenate([np.broadcast_to(slot[:, None], floors.shape)[inside], units])
    end_at = np.concatenate([floors[inside], np.ones(units.shape[0])])
    order = np.lexsort((end_at, end_unit))
    end_unit, end_at = end_unit[order], end_at[order]
    fresh = np.ones(end_unit.shape[0], dtype=bool)
    fresh[1:] = (end_unit[1:] != end_unit[:-1]) | (end_at[1:] != end_at[:-1])
    end_unit, end_at = end_unit[fresh], end_at[fresh]
    at_ends = initial_at(end_unit, end_at)
    # Per unit the first end past its equity (the first end when none is, as argmax).
    starts = np.flatnonzero(np.r_[True, end_unit[1:] != end_unit[:-1]])
    past = at_ends > equity[end_unit]
    index = np.arange(end_unit.shape[0])
    first_past = np.minimum.reduceat(np.where(past, index, np.iinfo(np.intp).max), starts)
    t = np.where(first_past == np.iinfo(np.intp).max, starts, first_past)
    lo = np.where(t > starts, end_at[t - 1], 0.0)
    hi = end_at[t]
    mid = 0.5 * (lo + hi)
    im_mid = initial_at(units, mid)
    im_hi = at_ends[t]
    e = equity[units]
    with np.errstate(divide="ignore", invalid="ignore"):
        det = mid * hi * (hi - mid)
        a = (im_mid * hi * hi - im_hi * mid * mid) / det
        curve = (im_hi * mid - im_mid * hi) / det
        b = np.where(curve > 0.0, curve, 0.0)  # as max(0.0, curve): NaN gives 0
        root = 2.0 * e / (a + np.sqrt(a * a + 4.0 * b * e))
    above = np.where(lo > root, lo, root)  # max(root, lo), NaN kept as the scalar max
    kept[units] = np.where(hi < above, hi, above)  # min(above, hi)
    return kept
