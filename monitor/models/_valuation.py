"""The valuation kernel: margin requirements of positions from notional and size.

Kept apart from the table so that the same kernel serves linear contracts (notional
``|qty| * contract_size * mark``, in the quote asset) and, later, contracts whose
notional is computed differently (inverse: in the base asset). Formulas:

* tiered, Binance "How to Calculate Liquidation Price of USDⓈ-M Futures Contracts"
  (https://www.binance.com/en/support/faq/b3c689c1f50a44cabb3a84e663b81d93):
  ``MM = notional * MMR - cum`` in the bracket of the notional; Bybit "Margin
  Parameters" (https://bybitglobal.com/en/announcement-info/margin-parameters):
  ``IM = position value / leverage``, never below the bracket's initial rate (the
  bracket caps leverage);
* size-scaled, Deribit "Linear Perpetual"
  (https://support.deribit.com/hc/en-us/articles/25944738177565-Linear-Perpetual):
  ``rate = base + slope * size`` applied to the whole notional.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.models._layout import Layout, bracket_flat_index

__all__ = ["margins_into"]


def margins_into(
    layout: Layout,
    instrument_ix: NDArray[np.integer[Any]],
    notional: NDArray[np.float64],
    size: NDArray[np.float64],
    leverage: NDArray[np.float64],
    initial: NDArray[np.float64],
    maintenance: NDArray[np.float64],
) -> None:
    """Write IM and MM of each position into ``initial`` and ``maintenance``.

    ``notional`` (settle asset, >= 0, contiguous float64) picks the bracket; ``size``
    (base units, >= 0) scales size-scaled rates and is overwritten as scratch.
    ``leverage`` NaN means not set. Few passes over the arrays, no temporaries kept.
    """
    flat = bracket_flat_index(layout, instrument_ix, notional)
    rate = layout.mmr.ravel().take(flat)
    if layout.has_slopes:
        slope = layout.mm_slope.take(instrument_ix)
        slope *= size
        rate += slope
    np.multiply(notional, rate, out=maintenance)
    maintenance -= layout.cum.ravel().take(flat)
    layout.imr.ravel().take(flat, out=rate, mode="clip")
    if layout.has_slopes:
        layout.im_slope.take(instrument_ix, out=slope, mode="clip")
        slope *= size
        rate += slope
    # 1/NaN is NaN and fmax ignores NaN, so "no leverage set" falls back to the bracket.
    with np.errstate(divide="ignore"):
        np.divide(1.0, leverage, out=size)
    np.fmax(rate, size, out=rate)
    np.multiply(notional, rate, out=initial)
