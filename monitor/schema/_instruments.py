"""Instruments, their margin models, collateral assets and portfolio-margin parameters
(config-like input: unknown fields are errors).
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "CollateralAsset",
    "Instrument",
    "InstrumentKind",
    "MarginModelSpec",
    "OptionStandardMargin",
    "PortfolioMarginParams",
    "PortfolioModel",
    "RateCurve",
    "SizeScaledMargin",
    "Tier",
    "TieredMargin",
]


class Tier(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One risk-limit bracket, as Binance and Bybit publish them.

    ``floor``/``cap`` bound the position notional (quote units) the bracket covers.
    ``mmr`` is the maintenance margin rate. The initial rate is ``imr`` or
    ``1 / max_leverage`` (give one). ``cum`` is the maintenance amount (Binance
    "cum", Bybit "deduction"); when absent it is derived from the brackets below.
    """

    floor: float
    cap: float
    mmr: float
    imr: float | None = None
    max_leverage: float | None = None
    cum: float | None = None


class TieredMargin(
    msgspec.Struct,
    tag="tiered",
    tag_field="model",
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
):
    """Risk-limit brackets by position notional (Binance USDⓈ-M, Bybit linear)."""

    tiers: tuple[Tier, ...]


class RateCurve(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A margin rate that grows with position size: ``base + slope * |size|``."""

    base: float
    slope: float = 0.0


class SizeScaledMargin(
    msgspec.Struct,
    tag="size_scaled",
    tag_field="model",
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
):
    """Deribit-style rates scaled by position size, applied to the whole position."""

    im: RateCurve
    mm: RateCurve


class OptionStandardMargin(
    msgspec.Struct,
    tag="option_standard",
    tag_field="model",
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
):
    """Deribit's standard margin of options, per contract of one base unit.

    Short call ``IM = max(im_rate - OTM/S, im_floor) + mark``, ``MM = mm_rate + mark``;
    short put ``IM = max(max(im_rate - OTM/S, im_floor) + mark, MM)``,
    ``MM = max(mm_rate, mm_rate x mark) + mark``; longs need none. Fractions are of one
    coin for inverse (coin-settled) options, of the underlying price ``S`` for linear
    ones. See ``monitor.models._option_margin`` for the source.
    """

    im_rate: float = 0.15
    im_floor: float = 0.10
    mm_rate: float = 0.075


MarginModelSpec = TieredMargin | SizeScaledMargin | OptionStandardMargin
InstrumentKind = Literal["linear", "inverse", "option"]


class Instrument(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A tradable contract.

    * ``linear``: settles in ``quote``; ``contract_size`` base units per contract.
    * ``inverse``: settles in ``base`` (coin-margined futures and perpetuals);
      ``contract_size`` is in quote units (e.g. USD 10), PnL
      ``qty x contract_size x (1/entry - 1/mark)`` in the coin.
    * ``option``: a European option on the price ``underlying`` (the symbol of its
      forward or index price ticks), with ``strike``, ``expiry`` (ISO 8601 UTC or ms
      since the epoch), ``option_type`` and ``settle`` (``base`` for inverse options
      quoted in coin, as Deribit's BTC options; ``quote``, the default, for linear
      ones); ``contract_size`` base units per contract; margin ``option_standard``.
    """

    symbol: str
    kind: InstrumentKind
    quote: str
    base: str
    margin: MarginModelSpec
    contract_size: float = 1.0
    underlying: str | None = None
    strike: float | None = None
    expiry: int | str | None = None
    option_type: Literal["call", "put"] | None = None
    settle: str | None = None

    @property
    def settle_asset(self) -> str:
        """The asset PnL, fees and margin of this contract are paid in."""
        if self.kind == "inverse":
            return self.base
        if self.kind == "option" and self.settle is not None:
            return self.settle
        return self.quote


class CollateralAsset(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An asset accepted as collateral, valued at ``(1 - haircut) x price``.

    ``price_symbol`` names the price tick that values one unit of the asset in the
    valuation asset (default: a tick whose symbol is the asset itself, e.g. ``"BTC"``).
    The haircut applies to positive balances only; a negative balance (a debt) counts
    at full value.
    """

    asset: str
    haircut: float = 0.0
    price_symbol: str | None = None


PortfolioModel = Literal["pm_risk_matrix", "pm_greeks", "pm_hybrid"]


class PortfolioMarginParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Portfolio (risk-matrix) margin of one underlying group; defaults after Deribit's.

    ``model``: ``pm_risk_matrix`` (full revaluation on the grid), ``pm_greeks`` (the same
    grid with the delta-gamma-vega approximation) or ``pm_hybrid`` (risk matrix with
    ``IM >= hybrid_floor x standard IM``). The grid: ``price_steps`` evenly spaced moves
    in ``[-price_range, +price_range]`` times vol up / same / down, with
    ``iv x (1 +/- vol_up|vol_down x (30 / days) ^ vol_power)`` (``vol_power_short`` up to
    30 days, ``vol_power_long`` beyond), floored at ``min_iv``; plus ``extreme_moves``
    with vol up, counted at ``extreme_fraction``. ``MM = loss + contingencies``,
    ``IM = MM x im_factor``. See ``monitor.scenarios`` and docs/portfolio-margin.md.
    """

    model: PortfolioModel = "pm_risk_matrix"
    price_range: float = 0.16
    price_steps: int = 9
    vol_up: float = 0.45
    vol_down: float = 0.30
    vol_power_short: float = 0.30
    vol_power_long: float = 0.13
    min_iv: float = 0.01
    extreme_moves: tuple[float, ...] = (-0.66, -0.33, 0.5, 1.0, 2.0, 3.0)
    extreme_fraction: float = 0.2
    futures_contingency: float = 0.01
    option_contingency: float = 0.01
    im_factor: float = 1.25
    hybrid_floor: float = 0.1
