"""Black-76 option values, Greeks and implied volatility, vectorised over arrays.

Black (1976), "The pricing of commodity contracts", Journal of Financial Economics 3,
167-179, with a zero interest rate (the crypto venues' convention: Deribit prices its
options on the forward with no discounting). For a forward ``F``, strike ``K``, time to
expiry ``T`` in years and volatility ``s`` (annualised, 0.45 = 45 %)::

    d1 = (ln(F/K) + s^2 T / 2) / (s sqrt T),   d2 = d1 - s sqrt T
    call = F N(d1) - K N(d2),                 put = K N(-d2) - F N(-d1)

Greeks, per unit of underlying (multiply by the contract size for a contract):

* ``delta``: forward delta ``N(d1)`` for a call, ``N(d1) - 1`` for a put, not
  premium-adjusted;
* ``gamma``: ``N'(d1) / (F s sqrt T)``, per unit of underlying price;
* ``vega``: ``F N'(d1) sqrt T / 100``, quote currency per volatility point (0.01);
* ``theta``: ``-F N'(d1) s / (2 sqrt T) / 365``, quote currency per calendar day.

At ``s sqrt T = 0`` (expired, or zero volatility) the value is the intrinsic value, delta
is 1 / 0 / 0.5 (in, out of, at the money; minus 1 for puts) and the other Greeks are 0.
The normal CDF is scipy's ``ndtr``, accurate far into the tails, so deep out-of-the-money
values are not lost to cancellation.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr

__all__ = ["DAYS_PER_YEAR", "MS_PER_YEAR", "Black76", "black76", "implied_vol", "years_to_expiry"]

DAYS_PER_YEAR: Final = 365.0
MS_PER_YEAR: Final = DAYS_PER_YEAR * 86_400_000.0
_INV_SQRT_2PI: Final = 0.3989422804014327
# Implied volatility is searched in [_VOL_MIN, _VOL_MAX] (0.0001 % to 10,000 % a year).
_VOL_MIN: Final = 1e-6
_VOL_MAX: Final = 100.0
_BISECTIONS: Final = 64

Array = NDArray[np.float64]


class Black76(NamedTuple):
    """Value and Greeks per unit of underlying, in quote currency (see the module doc)."""

    value: Array
    delta: Array
    gamma: Array
    vega: Array
    theta: Array


def years_to_expiry(expiry_ms: ArrayLike, now_ms: ArrayLike) -> Array:
    """``(expiry - now) / 365 days``, floored at 0 (an expired option has no time left)."""
    years = (np.asarray(expiry_ms, dtype=np.float64) - np.asarray(now_ms, dtype=np.float64)) / (
        MS_PER_YEAR
    )
    result: Array = np.maximum(years, 0.0)
    return result


def _pdf(x: Array) -> Array:
    result: Array = _INV_SQRT_2PI * np.exp(-0.5 * x * x)
    return result


def black76(
    forward: ArrayLike, strike: ArrayLike, years: ArrayLike, vol: ArrayLike, is_call: ArrayLike
) -> Black76:
    """Black-76 value and Greeks of calls (``is_call`` True) and puts, element-wise.

    Inputs broadcast against each other. ``forward`` and ``strike`` > 0, ``years`` and
    ``vol`` >= 0.
    """
    f, k, t, s, call = np.broadcast_arrays(
        np.asarray(forward, dtype=np.float64),
        np.asarray(strike, dtype=np.float64),
        np.asarray(years, dtype=np.float64),
        np.asarray(vol, dtype=np.float64),
        np.asarray(is_call, dtype=np.bool_),
    )
    root_t = np.sqrt(t)
    total = s * root_t
    live = total > 0.0
    sign = np.where(call, 1.0, -1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        d1 = np.where(live, (np.log(f / k) + 0.5 * total * total) / total, 0.0)
        d2 = d1 - total
        # w * (F N(w d1) - K N(w d2)) is the call for w = 1, the put for w = -1. The
        # out-of-the-money one is computed (no cancellation) and parity gives the other.
        otm = np.where(k >= f, 1.0, -1.0)
        time_value = np.maximum(otm * (f * ndtr(otm * d1) - k * ndtr(otm * d2)), 0.0)
        density = _pdf(d1)
        gamma = np.where(live, density / (f * total), 0.0)
        vega = np.where(live, f * density * root_t / 100.0, 0.0)
        theta = np.where(live, -f * density * s / (2.0 * root_t) / DAYS_PER_YEAR, 0.0)
    intrinsic = np.maximum(sign * (f - k), 0.0)
    value = np.where(live, time_value + intrinsic, intrinsic)
    moneyness = np.sign(f - k)  # 1 above the strike, -1 below, 0 at it
    expired_call_delta = 0.5 * (1.0 + moneyness)
    call_delta = np.where(live, ndtr(d1), expired_call_delta)
    delta = np.where(call, call_delta, call_delta - 1.0)
    return Black76(value, delta, gamma, vega, theta)


def implied_vol(
    price: ArrayLike, forward: ArrayLike, strike: ArrayLike, years: ArrayLike, is_call: ArrayLike
) -> Array:
    """The volatility at which Black-76 gives ``price``, element-wise.

    Solved on the time value (price minus intrinsic value), which is the same for a
    call and a put of one strike (put-call parity at zero rate), against the
    out-of-the-money option's value: deep in-the-money prices are not lost to
    cancellation inside the solve. The value is increasing in volatility, so a
    bisection in log-volatility over [1e-6, 100] (64 halvings: below 1e-17 relative)
    finds it whatever the moneyness or expiry, with no starting guess to go wrong.
    A price at or below intrinsic value gives 0; a price at or above the no-arbitrage
    bound (the forward for a call, the strike for a put), an expired option (``years``
    0) with time value, or a non-finite input gives NaN.
    """
    p, f, k, t, call = np.broadcast_arrays(
        np.asarray(price, dtype=np.float64),
        np.asarray(forward, dtype=np.float64),
        np.asarray(strike, dtype=np.float64),
        np.asarray(years, dtype=np.float64),
        np.asarray(is_call, dtype=np.bool_),
    )
    sign = np.where(call, 1.0, -1.0)
    time_value = p - np.maximum(sign * (f - k), 0.0)
    otm_is_call = k >= f
    bound = np.where(call, f, k)
    low = np.full(p.shape, np.log(_VOL_MIN))
    high = np.full(p.shape, np.log(_VOL_MAX))
    for _ in range(_BISECTIONS):
        middle = 0.5 * (low + high)
        guess = black76(f, k, t, np.exp(middle), otm_is_call).value
        above = guess > time_value
        high = np.where(above, middle, high)
        low = np.where(above, low, middle)
    vol = np.exp(0.5 * (low + high))
    finite = np.isfinite(p) & np.isfinite(f) & np.isfinite(k) & np.isfinite(t)
    vol = np.where(time_value <= 0.0, 0.0, vol)
    invalid = ~finite | (p >= bound) | ((t <= 0.0) & (time_value > 0.0))
    result: Array = np.where(invalid, np.nan, vol)
    return result
