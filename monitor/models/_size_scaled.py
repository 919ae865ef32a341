"""Size-scaled margin rates (Deribit futures): validation.

Deribit charges the whole position one rate that grows linearly with its size in
base-currency units, separately for initial and maintenance margin::

    IM = notional * (im.base + im.slope * |size|)
    MM = notional * (mm.base + mm.slope * |size|)

Source: Deribit, "Linear Perpetual" (Margin calculation examples),
https://support.deribit.com/hc/en-us/articles/25944738177565-Linear-Perpetual : BTC_USDC
"2% + (POS Size in BTC) * 0.005%" initial and "1% + (POS Size in BTC) * 0.005%"
maintenance, i.e. ``RateCurve(base=0.02, slope=0.00005)`` and
``RateCurve(base=0.01, slope=0.00005)`` with size in BTC. The same page and Deribit's
"Futures" docs (https://test.deribit.com/pages/docs/futures) state the inverse
futures' rates the same way ("0.5% per 100BTC" = a slope of 0.00005 per BTC).
"""

from __future__ import annotations

import math

from monitor.errors import ConfigError
from monitor.schema import RateCurve, SizeScaledMargin

__all__ = ["check_size_scaled"]


def check_size_scaled(symbol: str, spec: SizeScaledMargin) -> SizeScaledMargin:
    """Return ``spec`` if it is valid, else raise ConfigError naming the instrument.

    Valid means: bases in (0, 1], slopes finite and >= 0, and the initial curve at
    or above the maintenance curve at every size (so MM <= IM always).
    """
    _check_curve(symbol, "im", spec.im)
    _check_curve(symbol, "mm", spec.mm)
    if spec.im.base < spec.mm.base or spec.im.slope < spec.mm.slope:
        raise ConfigError(
            f"instrument {symbol}: size-scaled im curve ({spec.im.base:g} + {spec.im.slope:g}"
            f" x size) must be at or above the mm curve ({spec.mm.base:g} + "
            f"{spec.mm.slope:g} x size) at every size"
        )
    return spec


def _check_curve(symbol: str, name: str, curve: RateCurve) -> None:
    if not 0.0 < curve.base <= 1.0:  # also rejects NaN
        raise ConfigError(
            f"instrument {symbol}: size-scaled {name}.base {curve.base!r} must be in (0, 1]"
        )
    if not (math.isfinite(curve.slope) and curve.slope >= 0.0):
        raise ConfigError(
            f"instrument {symbol}: size-scaled {name}.slope {curve.slope!r} must be a finite "
            "number >= 0 (rate added per unit of base-currency size)"
        )
