"""Liquidation and bankruptcy prices of inverse (coin-margined) positions.

For a position of signed size ``s = qty x contract_size`` quote units (USD) in a margin
unit whose equity in the coin at the current mark ``m`` is ``E`` and whose other
positions need ``O`` coin of maintenance margin, with every other price held still::

    equity(P) = E + s (1/m - 1/P)
    MM(P)     = O + (|s| / P) (mmr + slope |s| / P) - cum   (bracket of the coin notional |s|/P)

Writing ``x = 1/P`` and ``A = E + s/m - O + cum``, ``equity(P) = MM(P)`` is
``slope s^2 x^2 + (s + |s| mmr) x - A = 0``: linear for tiered brackets
(``P = (s + |s| mmr) / A``), quadratic with size-scaled rates, solved in closed form for
its positive root. As for linear contracts (``monitor.models._liquidation``), the
bracket is looked up again at the solved price until it is stable. The bankruptcy
price solves ``equity(P) = 0``: ``P = s / (E + s/m)``. This is the inverse-contract
arithmetic of BitMEX ("Inverse contracts": PnL ``contracts x multiplier x (1/entry -
1/exit)``) and Deribit ("Inverse Futures", https://www.deribit.com/kb/inverse-futures).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.models._layout import Layout, bracket_flat_index

__all__ = ["inverse_bankruptcy_prices", "inverse_liquidation_prices"]

Array = NDArray[np.float64]


def inverse_liquidation_prices(
    layout: Layout,
    instrument_ix: NDArray[np.integer[Any]],
    signed_size: Array,
    mark: Array,
    equity: Array,
    other_maintenance: Array,
) -> Array:
    """Prices at which each unit's coin equity equals its maintenance margin (NaN if none)."""
    size = np.abs(signed_size)
    base = equity + signed_size / mark - other_maintenance
    slope = layout.mm_slope.take(instrument_ix) * signed_size**2
    mmr = layout.mmr.ravel()
    cum = layout.cum.ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        flat = bracket_flat_index(layout, instrument_ix, np.ascontiguousarray(size / mark))
        price = np.full(size.shape, np.nan)
        pending = np.arange(size.shape[0])
        ix = instrument_ix
        for _ in range(layout.max_tiers + 1):
            a = base[pending] + cum.take(flat)
            b = signed_size[pending] + size[pending] * mmr.take(flat)
            x = _positive_root(slope[pending], b, a)
            price[pending] = 1.0 / x
            coin_notional = np.ascontiguousarray(size[pending] * x)
            finite = np.isfinite(coin_notional)
            found = flat.copy()
            found[finite] = bracket_flat_index(layout, ix[finite], coin_notional[finite])
            moved = found != flat
            if not moved.any():
                break
            pending, ix, flat = pending[moved], ix[moved], found[moved]
    return _positive_or_nan(price)


def _positive_root(quadratic: Array, linear: Array, constant: Array) -> Array:
    """The positive root ``x`` of ``q x^2 + l x - c = 0`` (q >= 0), NaN if none."""
    with np.errstate(divide="ignore", invalid="ignore"):
        root_d = np.sqrt(linear * linear + 4.0 * quadratic * constant)
        # Two algebraically equal forms; each avoids cancellation for one sign of l.
        stable_pos = 2.0 * constant / (linear + root_d)
        stable_neg = (root_d - linear) / (2.0 * quadratic)
        x = np.where(
            quadratic == 0.0, constant / linear, np.where(linear > 0, stable_pos, stable_neg)
        )
    result: Array = np.where(np.isfinite(x) & (x > 0.0), x, np.nan)
    return result


def inverse_bankruptcy_prices(signed_size: Array, mark: Array, equity: Array) -> Array:
    """Prices at which each unit's coin equity reaches zero (NaN if none > 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return _positive_or_nan(signed_size / (equity + signed_size / mark))


def _positive_or_nan(price: Array) -> Array:
    valid = np.isfinite(price) & (price > 0.0)
    result: Array = np.where(valid, price, np.nan)
    return result
