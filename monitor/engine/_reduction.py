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

import math

import numpy as np
from numpy.typing import NDArray

from monitor.book import Book, Index
from monitor.models import INVERSE

__all__ = ["kept_fraction"]


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
    models = book.models
    if not equity > 0.0:
        return 0.0

    def initial_at(fractions: NDArray[np.float64]) -> NDArray[np.float64]:
        m = fractions.shape[0]
        repeated_mark = np.repeat(mark, m)
        _, im, _ = book.values(
            np.repeat(instrument, m),
            (qty[:, None] * fractions[None, :]).ravel(),
            repeated_mark,
            np.repeat(leverage, m),
            repeated_mark,
        )
        total: NDArray[np.float64] = (im.reshape(-1, m) * settle_value[:, None]).sum(axis=0)
        return total

    if initial_at(np.ones(1))[0] <= equity:
        return 1.0
    notional = np.abs(qty) * models.contract_size.take(instrument) * mark
    if not book.contracts.linear_only:  # inverse brackets are keyed by coin notional
        inverse = book.contracts.kind.take(instrument) == INVERSE
        with np.errstate(divide="ignore", invalid="ignore"):  # an option may be worth 0
            notional = np.where(inverse, notional / (mark * mark), notional)
    with np.errstate(divide="ignore", invalid="ignore"):
        floors = models.layout.floors[instrument, 1:] / notional[:, None]
    inside = floors[np.isfinite(floors) & (floors > 0.0) & (floors < 1.0)]
    ends = np.unique(np.concatenate([inside, [1.0]]))
    at_ends = initial_at(ends)
    t = int(np.argmax(at_ends > equity))
    lo = float(ends[t - 1]) if t > 0 else 0.0
    hi = float(ends[t])
    mid = 0.5 * (lo + hi)
    im_mid = float(initial_at(np.array([mid]))[0])
    im_hi = float(at_ends[t])
    det = mid * hi * (hi - mid)
    a = (im_mid * hi * hi - im_hi * mid * mid) / det
    b = max(0.0, (im_hi * mid - im_mid * hi) / det)
    root = 2.0 * equity / (a + math.sqrt(a * a + 4.0 * b * equity))
    return min(max(root, lo), hi)
