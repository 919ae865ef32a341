"""Fused kernels for the full revaluation, with the numpy path as their reference.

numpy needs about twenty passes over the position arrays for what is one pass of
arithmetic (tier lookup, rates, uPnL, IM, MM, the per-unit sums). For books of linear
contracts (the common case, and the one the full revaluation spends its time on), one
numba kernel does it in one pass: per open row, the bracket of its notional, its figures
(written back when asked) and the scatter-add into its unit. ``recompute_units``
(``monitor.engine._revalue``) uses it when numba is installed and falls back to the
numpy reference otherwise; ``tests/unit/test_engine_kernels.py`` checks them against
each other. Compiled on first use and cached on disk (``cache=True``); ``warm_up`` compiles
it ahead, off the event loop, so the first sweep does not pay for it. The kernel
releases the GIL (``nogil=True``).

Formulas are those of ``monitor.models._valuation`` (Binance brackets, Deribit
size-scaled rates) and ``monitor.book._contracts`` (linear uPnL).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.engine._portfolio_index import warm_up as warm_up_holder_index
from monitor.engine._tick_kernels import warm_up as warm_up_tick
from monitor.scenarios._fused import warm_up as warm_up_holder_figures

__all__ = ["HAVE_NUMBA", "revalue_linear", "revalue_linear_reference", "warm_up"]

try:  # numba is optional at import time: the numpy reference always works
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency; this is the fallback
    HAVE_NUMBA = False
else:
    HAVE_NUMBA = True


def revalue_linear_reference(
    instrument: NDArray[np.intp],
    qty: NDArray[np.float64],
    entry: NDArray[np.float64],
    leverage: NDArray[np.float64],
    unit: NDArray[np.intp],
    mark: NDArray[np.float64],
    contract_size: NDArray[np.float64],
    settle_value: NDArray[np.float64],
    n_tiers: NDArray[np.intp],
    floors: NDArray[np.float64],
    mmr: NDArray[np.float64],
    imr: NDArray[np.float64],
    cum: NDArray[np.float64],
    mm_slope: NDArray[np.float64],
    im_slope: NDArray[np.float64],
    rows_out: NDArray[np.float64],
    units_out: NDArray[np.float64],
) -> None:
    """Readable numpy version: ``rows_out[:, r] = (uPnL, IM, MM, |uPnL|)`` of every row in
    the valuation asset, and ``units_out[u] += (uPnL, IM, MM, |uPnL|)`` over open rows."""
    cs = contract_size[instrument]
    size = np.abs(qty) * cs
    m = mark[instrument]
    notional = size * m
    bracket = np.zeros(qty.shape[0], dtype=np.intp)
    for j in range(1, floors.shape[1]):
        bracket += (notional > floors[instrument, j]) & (j < n_tiers[instrument])
    mm_rate = mmr[instrument, bracket] + mm_slope[instrument] * size
    im_rate = imr[instrument, bracket] + im_slope[instrument] * size
    with np.errstate(divide="ignore"):
        im_rate = np.fmax(im_rate, 1.0 / leverage)
    value = settle_value[instrument]
    upnl = qty * cs * (m - entry) * value
    initial = notional * im_rate * value
    maintenance = (notional * mm_rate - cum[instrument, bracket]) * value
    rows_out[0], rows_out[1], rows_out[2], rows_out[3] = upnl, initial, maintenance, abs(upnl)
    is_open = qty != 0.0
    n_units = units_out.shape[0]
    for k, column in enumerate((upnl, initial, maintenance, np.abs(upnl))):
        units_out[:, k] += np.bincount(unit[is_open], column[is_open], minlength=n_units)


def _fused(
    instrument: Any,
    qty: Any,
    entry: Any,
    leverage: Any,
    unit: Any,
    mark: Any,
    contract_size: Any,
    settle_value: Any,
    n_tiers: Any,
    floors: Any,
    mmr: Any,
    imr: Any,
    cum: Any,
    mm_slope: Any,
    im_slope: Any,
    rows_out: Any,
    units_out: Any,
) -> None:  # pragma: no cover - compiled by numba; checked against the reference
    for r in range(qty.shape[0]):
        ix = instrument[r]
        q = qty[r]
        cs = contract_size[ix]
        m = mark[ix]
        size = abs(q) * cs
        notional = size * m
        b = 0
        for j in range(1, n_tiers[ix]):
            if notional > floors[ix, j]:
                b = j
            else:
                break
        mm_rate = mmr[ix, b] + mm_slope[ix] * size
        im_rate = imr[ix, b] + im_slope[ix] * size
        lev = leverage[r]
        if not math.isnan(lev) and 1.0 / lev > im_rate:
            im_rate = 1.0 / lev
        value = settle_value[ix]
        upnl = q * cs * (m - entry[r]) * value
        initial = notional * im_rate * value
        maintenance = (notional * mm_rate - cum[ix, b]) * value
        rows_out[0, r] = upnl
        rows_out[1, r] = initial
        rows_out[2, r] = maintenance
        rows_out[3, r] = abs(upnl)
        if q != 0.0:
            u = unit[r]
            units_out[u, 0] += upnl
            units_out[u, 1] += initial
            units_out[u, 2] += maintenance
            units_out[u, 3] += abs(upnl)


revalue_linear: Any = (
    njit(cache=True, nogil=True)(_fused) if HAVE_NUMBA else revalue_linear_reference
)


def warm_up() -> float:
    """Compile (or load from the disk cache) the kernel on tiny inputs; return seconds."""
    started = time.perf_counter()
    one = np.ones(1)
    ix = np.zeros(1, dtype=np.intp)
    grid = np.ones((1, 1))
    revalue_linear(
        ix, one, one, one, ix, one, one, one, np.ones(1, dtype=np.intp),
        grid, grid, grid, grid, one, one, np.zeros((4, 1)), np.zeros((1, 4)),
    )  # fmt: skip
    warm_up_tick()  # the tick's option rows and unit sums, the portfolio-margin kernels
    warm_up_holder_index()
    warm_up_holder_figures()
    return time.perf_counter() - started
