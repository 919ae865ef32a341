"""Settings of volatility from the stream and dynamic margin (config section ``dynamic``)."""

from __future__ import annotations

import math
from typing import Annotated

import msgspec

from monitor.errors import ConfigError

__all__ = ["DynamicMarginParams", "DynamicSettings"]

_Positive = Annotated[float, msgspec.Meta(gt=0)]


class DynamicMarginParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Dynamic margin of one underlying (or one instrument): its rates times
    ``clip(vol / reference_vol, floor, cap)``, made anti-procyclical.

    * ``reference_vol``: the annualised volatility at which the configured rates apply
      (scale 1).
    * ``floor`` (default 1.0) and ``cap`` (default 3.0): bounds of the scale.
    * ``stressed_weight`` (default 0.25): weight of the stressed-period scale (the highest
      seen) in the target, ``(1 - w) x raw + w x stressed`` (EMIR RTS, Commission
      Delegated Regulation (EU) No 153/2013, Art. 28(1)(b): at least 25 % weight to
      stressed observations).
    * ``max_change_per_hour`` (default 0.5): the most the scale moves per hour of event
      time, either way.
    * ``lead_time_s`` (default 0): an increase applies this long (event time) after it was
      decided; decreases apply at once.
    * ``instruments``: more instruments whose rates follow this underlying's volatility,
      besides the instrument named by the key and those whose ``underlying`` it is.
    """

    reference_vol: _Positive
    floor: _Positive = 1.0
    cap: _Positive = 3.0
    stressed_weight: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.25
    max_change_per_hour: _Positive = 0.5
    lead_time_s: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    instruments: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (math.isfinite(self.cap) and self.floor <= self.cap):
            raise ConfigError(
                f"dynamic margin floor {self.floor} must not exceed its cap {self.cap}"
            )


class DynamicSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Volatility from the stream and, per underlying, dynamic margin.

    * ``bar_s`` (default 60): bar length in event time; the close of each bar is its last
      accepted mark.
    * ``ewma_lambda`` (default 0.94) and ``ewma_warmup`` (default 30 returns): the
      RiskMetrics estimator (``monitor.risk.EwmaVolatility``).
    * ``margin``: dynamic margin per underlying (a price symbol: a future or perpetual,
      or an option underlying), :class:`DynamicMarginParams`; empty: volatility is measured
      and exported, rates stay as configured.
    """

    bar_s: _Positive = 60.0
    ewma_lambda: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.94
    ewma_warmup: Annotated[int, msgspec.Meta(ge=2)] = 30
    margin: dict[str, DynamicMarginParams] = {}
