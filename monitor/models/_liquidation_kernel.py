"""Liquidation prices in one compiled pass, with ``_liquidation.liquidation_prices`` as
the reference.

The numpy solve repeats about ten array passes per bracket iteration and narrows its
working arrays between iterations; per position it is a short loop: solve in the
bracket of the current notional, look the bracket up again at the solved price, and
stop when it does not move (at most ``max_tiers + 1`` solves; the formulas, Binance's
published liquidation price, are in ``monitor.models._liquidation``). Compiled with
numba on first use and cached on disk; ``tests/unit/test_liquidation_kernel.py`` checks
it against the reference on random positions, in every bracket.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.compiled import HAVE_NUMBA, compiled
from monitor.models._layout import Layout

__all__ = ["HAVE_NUMBA", "liquidation_prices_fused"]


def _solve(
    instrument: Any,
    signed_size: Any,
    mark: Any,
    equity: Any,
    other_maintenance: Any,
    exposure: Any,
    floors: Any,
    mmr: Any,
    cum: Any,
    mm_slope: Any,
    out: Any,
) -> None:  # pragma: no cover - compiled by numba; checked against the reference
    width = floors.shape[1]
    for k in range(signed_size.shape[0]):
        ix = instrument[k]
        s = signed_size[k]
        size = abs(s)
        slope = exposure[k]
        constant = other_maintenance[k] - equity[k] + slope * mark[k]
        slope_rate = mm_slope[ix] * size
        notional = size * mark[k]
        b = 0
        for j in range(1, width):
            b += notional > floors[ix, j]
        price = math.nan
        for _ in range(width + 1):
            rate = mmr[ix, b] + slope_rate
            price = (constant - cum[ix, b]) / (slope - size * rate)
            at = size * price
            found = 0
            for j in range(1, width):
                found += at > floors[ix, j]
            if found == b:
                break
            b = found
        out[k] = price if (math.isfinite(price) and price > 0.0) else math.nan


_fused: Any = compiled(_solve, numpy_errors=True)


def liquidation_prices_fused(
    layout: Layout,
    instrument_ix: NDArray[np.integer[Any]],
    signed_size: NDArray[np.float64],
    mark: NDArray[np.float64],
    equity: NDArray[np.float64],
    other_maintenance: NDArray[np.float64],
    exposure: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    """``_liquidation.liquidation_prices`` (same arguments, same result), compiled."""
    out = np.empty(signed_size.shape[0])
    _fused(
        np.ascontiguousarray(instrument_ix, dtype=np.intp),
        np.ascontiguousarray(signed_size, dtype=np.float64),
        np.ascontiguousarray(mark, dtype=np.float64),
        np.ascontiguousarray(equity, dtype=np.float64),
        np.ascontiguousarray(other_maintenance, dtype=np.float64),
        np.ascontiguousarray(signed_size if exposure is None else exposure, dtype=np.float64),
        layout.floors,
        layout.mmr,
        layout.cum,
        layout.mm_slope,
        out,
    )
    return out
