"""Liquidation and bankruptcy prices of positions under the compiled margin models.

For one position of signed base size ``s = qty * contract_size`` in a margin unit
(a cross account, or one isolated position) whose equity at the current mark ``m``
is ``E`` and whose other positions need ``O`` maintenance margin, with every other
price held still::

    equity(P) = E + s * (P - m)
    MM(P)     = O + |s| * P * rate - cum          (rate, cum of the bracket at |s| * P)

The liquidation price solves ``equity(P) = MM(P)``; in one bracket that is linear::

    P = (O - cum - E + s * m) / (s - |s| * rate)

which is Binance's published formula (``LP = (WB - TMM + UPNL + cum - Side * Position
* EP) / (Position * MMR - Side * Position)`` with ``E = WB + UPNL + s * (m - EP)``),
"How to Calculate Liquidation Price of USDⓈ-M Futures Contracts",
https://www.binance.com/en/support/faq/b3c689c1f50a44cabb3a84e663b81d93. The bracket
depends on ``P``, so, as that page says, the price is solved in the current bracket,
the bracket is looked up again at the solved price, and the solve is repeated until
they agree. With ``cum`` derived from the brackets, ``MM`` is convex in ``P`` and each
bracket's line lies below it, so every solve lands on the side of the true price
that the bracket lines under-estimate and the brackets visited move monotonically
towards the right one: at most ``max_tiers + 1`` solves. The bankruptcy price solves
``equity(P) = 0``.

A long's price lies below mark when the unit is healthy, provided its maintenance
rate is below 100 %: size-scaled rates grow without bound, and past 100 % a rising
price adds more margin than equity, so the solution lies above mark (or does not exist).

Wrong-way collateral: when the instrument's mark also prices something else in the
unit (BTC collateral valued by ``BTCUSDT`` under a long ``BTCUSDT``), the unit's equity
minus the rest of its maintenance margin moves by more than ``s`` per unit of price.
The caller passes that *exposure* ``x`` (default ``s``) and the equations become::

    E + x * (P - m) = O + |s| * P * rate - cum      P = (O - cum - E + x * m) / (x - |s| * rate)
    E + x * (P - m) = 0                              P = m - E / x

still linear per bracket, so the same iteration applies.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.models._layout import Layout, bracket_flat_index

__all__ = ["bankruptcy_prices", "liquidation_prices"]


def liquidation_prices(
    layout: Layout,
    instrument_ix: NDArray[np.integer[Any]],
    signed_size: NDArray[np.float64],
    mark: NDArray[np.float64],
    equity: NDArray[np.float64],
    other_maintenance: NDArray[np.float64],
    exposure: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    """Prices at which each unit's equity equals its maintenance margin (NaN if none > 0).

    ``exposure`` is how much the unit's equity minus its other maintenance margin moves
    per unit of the mark (module doc); ``signed_size`` when None.
    """
    size = np.abs(signed_size)
    slope = signed_size if exposure is None else exposure
    # Everything in the bracket equation that does not depend on the bracket.
    constant = other_maintenance - equity + slope * mark
    slope_rate = layout.mm_slope.take(instrument_ix) * size if layout.has_slopes else None
    mmr = layout.mmr.ravel()
    cum = layout.cum.ravel()

    flat = bracket_flat_index(layout, instrument_ix, size * mark)
    price = np.empty(size.shape)
    # Each pass solves the positions whose bracket moved in the pass before; the
    # working arrays are narrowed to them and ``pending`` maps them back.
    pending = np.arange(size.shape[0])
    ix = instrument_ix
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(layout.max_tiers + 1):
            rate = mmr.take(flat)
            if slope_rate is not None:
                rate += slope_rate
            solved = (constant - cum.take(flat)) / (slope - size * rate)
            price[pending] = solved
            found = bracket_flat_index(layout, ix, size * solved)
            moved = found != flat
            if not moved.any():
                break
            pending, ix, flat = pending[moved], ix[moved], found[moved]
            constant, slope, size = constant[moved], slope[moved], size[moved]
            if slope_rate is not None:
                slope_rate = slope_rate[moved]
    # With validated brackets the loop converges; if float rounding leaves a root
    # flickering across a bracket floor, both solves agree to rounding and the last
    # one stands.
    return _positive_or_nan(price)


def bankruptcy_prices(
    signed_size: NDArray[np.float64],
    mark: NDArray[np.float64],
    equity: NDArray[np.float64],
    exposure: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    """Prices at which each unit's equity reaches zero (NaN if none > 0).

    ``exposure`` is how much the unit's equity moves per unit of the mark
    (``signed_size`` when None).
    """
    slope = signed_size if exposure is None else exposure
    with np.errstate(divide="ignore", invalid="ignore"):
        return _positive_or_nan(mark - equity / slope)


def _positive_or_nan(price: NDArray[np.float64]) -> NDArray[np.float64]:
    valid = np.isfinite(price) & (price > 0.0)
    return np.where(valid, price, np.nan)
