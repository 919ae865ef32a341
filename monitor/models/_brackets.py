"""Risk-limit brackets (Binance USDⓈ-M, Bybit linear): validation and compilation.

A tiered model charges, for a position of notional ``N`` in bracket ``i``::

    MM = N * mmr_i - cum_i
    IM = N * max(imr_i, 1 / leverage)      # imr_i alone when no leverage is set

``cum_i`` is the bracket's maintenance amount. Binance derives it from the brackets
below ("How to Calculate Liquidation Price of USDⓈ-M Futures Contracts",
https://www.binance.com/en/support/faq/b3c689c1f50a44cabb3a84e663b81d93, section
"Maintenance Amount")::

    cum_0 = 0,   cum_i = cum_{i-1} + floor_i * (mmr_i - mmr_{i-1})

which is exactly the amount that makes ``MM`` continuous at every bracket floor.
Bybit publishes the same quantity as the "maintenance margin deduction". A bracket
covers notionals in ``(floor, cap]`` (the first one also covers 0): a position worth
exactly a bracket's cap is still inside it, as Bybit's "risk limit" reads. Because
``MM`` is continuous the boundary choice only matters for ``IM``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from monitor.errors import ConfigError
from monitor.schema import Tier, TieredMargin

__all__ = ["CompiledBrackets", "compile_brackets"]

# A given cum may differ from the derived one by this much (relative to floor * mmr)
# and still count as continuous: published amounts are exact, typed ones may be rounded.
_CUM_TOLERANCE = 1e-6
# How far imr and 1 / max_leverage may disagree when a tier gives both.
_LEVERAGE_TOLERANCE = 1e-2


class CompiledBrackets(NamedTuple):
    """One instrument's brackets as parallel tuples, ordered by floor."""

    floors: tuple[float, ...]
    caps: tuple[float, ...]
    mmr: tuple[float, ...]
    imr: tuple[float, ...]
    cum: tuple[float, ...]


def compile_brackets(symbol: str, spec: TieredMargin) -> CompiledBrackets:
    """Validate ``spec`` and return its brackets with ``imr`` and ``cum`` filled in.

    Raises ConfigError naming the instrument and the (1-based) tier when the
    brackets are not contiguous from 0, a rate is outside (0, 1], ``imr < mmr``,
    maintenance rates decrease, or a given ``cum`` breaks continuity.
    """
    if not spec.tiers:
        raise ConfigError(f"instrument {symbol}: tiered margin has no tiers; give at least one")
    floors: list[float] = []
    caps: list[float] = []
    mmrs: list[float] = []
    imrs: list[float] = []
    cums: list[float] = []
    for number, tier in enumerate(spec.tiers, start=1):
        where = f"instrument {symbol}: tier {number}"
        _check_bounds(where, tier, number, caps[-1] if caps else None)
        mmr = _check_rate(where, "mmr", tier.mmr)
        imr = _initial_rate(where, tier)
        if imr < mmr:
            raise ConfigError(
                f"{where}: imr {imr:g} is below mmr {mmr:g}; the initial rate must be at "
                "least the maintenance rate"
            )
        if mmrs and mmr < mmrs[-1]:
            raise ConfigError(
                f"{where}: mmr {mmr:g} is below the previous tier's {mmrs[-1]:g}; "
                "maintenance rates must not decrease with notional"
            )
        derived = cums[-1] + tier.floor * (mmr - mmrs[-1]) if cums else 0.0
        cum = derived
        if tier.cum is not None:
            cum = _check_cum(where, tier.cum, tier.floor * mmr, derived)
        floors.append(tier.floor)
        caps.append(tier.cap)
        mmrs.append(mmr)
        imrs.append(imr)
        cums.append(cum)
    return CompiledBrackets(tuple(floors), tuple(caps), tuple(mmrs), tuple(imrs), tuple(cums))


def _check_bounds(where: str, tier: Tier, number: int, previous_cap: float | None) -> None:
    if not math.isfinite(tier.floor) or tier.floor < 0:
        raise ConfigError(f"{where}: floor {tier.floor!r} must be a finite number >= 0")
    if not tier.cap > tier.floor:  # also rejects a NaN cap
        raise ConfigError(f"{where}: cap {tier.cap!r} must be above floor {tier.floor!r}")
    if previous_cap is None:
        if tier.floor != 0:
            raise ConfigError(f"{where}: the first tier must start at floor 0, not {tier.floor!r}")
    elif not math.isclose(tier.floor, previous_cap, rel_tol=1e-12, abs_tol=0.0):
        raise ConfigError(
            f"{where}: floor {tier.floor!r} does not equal tier {number - 1}'s cap "
            f"{previous_cap!r}; tiers must be contiguous and sorted by floor"
        )


def _check_rate(where: str, name: str, rate: float) -> float:
    if not 0.0 < rate <= 1.0:  # also rejects NaN
        raise ConfigError(f"{where}: {name} {rate!r} must be in (0, 1]")
    return rate


def _initial_rate(where: str, tier: Tier) -> float:
    """The tier's initial rate: ``imr``, else ``1 / max_leverage`` (both: they must agree)."""
    if tier.max_leverage is not None and not tier.max_leverage >= 1.0:
        raise ConfigError(f"{where}: max_leverage {tier.max_leverage!r} must be >= 1")
    if tier.imr is None:
        if tier.max_leverage is None:
            raise ConfigError(f"{where}: give imr or max_leverage")
        return 1.0 / tier.max_leverage
    imr = _check_rate(where, "imr", tier.imr)
    # Loose: exchanges print 3x as 33.3 %; imr is what is charged.
    if tier.max_leverage is not None and not math.isclose(
        imr * tier.max_leverage, 1.0, rel_tol=_LEVERAGE_TOLERANCE
    ):
        raise ConfigError(
            f"{where}: imr {imr:g} disagrees with max_leverage {tier.max_leverage:g}; give one"
        )
    return imr


def _check_cum(where: str, cum: float, floor_margin: float, derived: float) -> float:
    if not abs(cum - derived) <= _CUM_TOLERANCE * max(1.0, floor_margin):  # rejects NaN
        raise ConfigError(
            f"{where}: cum {cum!r} would make maintenance margin jump at the floor "
            f"(the brackets below give {derived!r}); fix it or leave cum out to derive it"
        )
    return cum
