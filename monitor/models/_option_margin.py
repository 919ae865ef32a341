"""Standard option margin (``margin.model: "option_standard"``), Deribit's published rules.

Source: Deribit, "Options" contract documentation, section "Margins"
(https://www.deribit.com/pages/docs/options), for inverse (coin-settled) options, per
contract of one coin, with ``S`` the underlying's mark price and ``mark`` the option's
mark price in coin::

    short call  IM = max(0.15 - OTM / S, 0.10) + mark          OTM = max(K - S, 0)
                MM = 0.075 + mark
    short put   IM = max(max(0.15 - OTM / S, 0.10) + mark, MM)  OTM = max(S - K, 0)
                MM = max(0.075, 0.075 x mark) + mark
    long        IM = MM = 0 (the premium is paid; the position's value counts in equity)

The rates 0.15, 0.10 and 0.075 are ``im_rate``, ``im_floor`` and ``mm_rate`` of
:class:`monitor.schema.OptionStandardMargin`. For linear options (settled in the quote
asset, e.g. USDC) the same fractions apply to ``S`` in the quote asset: every coin
amount above is multiplied by ``S`` (so ``0.075 x mark`` stays ``0.075 x mark``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["short_option_margins"]

Array = NDArray[np.float64]


def short_option_margins(
    mark: Array,
    underlying: Array,
    strike: Array,
    is_call: NDArray[np.bool_],
    coin_quoted: NDArray[np.bool_],
    rates: Array,
) -> tuple[Array, Array]:
    """(IM, MM) per base unit of a short option, in its settle asset.

    ``mark`` is the option's mark per base unit in the settle asset; ``rates`` is
    ``[n, 3]``: im_rate, im_floor, mm_rate per option.
    """
    im_rate, im_floor, mm_rate = rates[:, 0], rates[:, 1], rates[:, 2]
    # Everything in coin per coin of underlying first, then scaled to the settle asset.
    mark_coin = np.where(coin_quoted, mark, mark / underlying)
    otm = np.where(
        is_call, np.maximum(strike - underlying, 0.0), np.maximum(underlying - strike, 0.0)
    )
    charge = np.maximum(im_rate - otm / underlying, im_floor)
    call_mm = mm_rate + mark_coin
    put_mm = np.maximum(mm_rate, mm_rate * mark_coin) + mark_coin
    maintenance = np.where(is_call, call_mm, put_mm)
    initial = np.where(is_call, charge + mark_coin, np.maximum(charge + mark_coin, put_mm))
    scale = np.where(coin_quoted, 1.0, underlying)
    return initial * scale, maintenance * scale
