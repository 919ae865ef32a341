"""Engine settings (config section ``engine``)."""

from __future__ import annotations

import math

import msgspec

from monitor.errors import ConfigError
from monitor.schema import CollateralAsset, PortfolioMarginParams

__all__ = ["EngineConfig"]


class EngineConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the engine values collateral and judges margin.

    * ``valuation_asset`` (default ``"USDT"``): every amount is compared in it; worth 1.
    * ``collateral`` (default none): other assets accepted in wallets, each with its
      haircut and the price tick that values it (:class:`CollateralAsset`).
    * ``margin_call_ratio`` (default 0.8): the warning level of ``MM / equity``; a unit
      at or above it is in margin call even with equity above initial margin.
    * ``hysteresis`` (default 0.05): the band, as a fraction, a unit's figures must
      clear an entry threshold by before it returns to a better state (see
      ``monitor.states``).
    * ``idempotency_window_s`` (default 86,400): how long, in ledger event time, an
      applied ledger id is remembered to drop its duplicates (see ``monitor.book._seen``).
    * ``idempotency_max_ids`` (default 2,000,000): the most ledger ids remembered at
      once, oldest forgotten first, so memory stays bounded (about 50 bytes an id).
    * ``price_bands`` (default true): in a book of linear contracts, a tick revalues and
      judges only the units with a position whose mark left the band within which the
      unit's state provably cannot change (``monitor.engine._band_kernels``); the others
      keep the figures of the marks they were last judged at. False revalues every
      holder of every instrument that moved. Events are the same either way.
    * ``portfolio_margin`` (default none): portfolio-margin parameters per underlying
      group (an option underlying or a future symbol) for accounts in ``portfolio`` mode;
      groups not named use the defaults (:class:`PortfolioMarginParams`).
    """

    valuation_asset: str = "USDT"
    collateral: tuple[CollateralAsset, ...] = ()
    margin_call_ratio: float = 0.8
    hysteresis: float = 0.05
    idempotency_window_s: float = 86_400.0
    idempotency_max_ids: int = 2_000_000
    price_bands: bool = True
    portfolio_margin: dict[str, PortfolioMarginParams] = {}

    def __post_init__(self) -> None:
        if not (math.isfinite(self.margin_call_ratio) and 0.0 < self.margin_call_ratio <= 1.0):
            raise ConfigError(
                f"engine.margin_call_ratio {self.margin_call_ratio!r} must be in (0, 1]"
            )
        if not (math.isfinite(self.hysteresis) and 0.0 <= self.hysteresis < 1.0):
            raise ConfigError(f"engine.hysteresis {self.hysteresis!r} must be in [0, 1)")
        if not (math.isfinite(self.idempotency_window_s) and self.idempotency_window_s > 0.0):
            raise ConfigError(
                f"engine.idempotency_window_s {self.idempotency_window_s!r} must be a positive "
                "number of seconds"
            )
        if self.idempotency_max_ids < 1:
            raise ConfigError(
                f"engine.idempotency_max_ids {self.idempotency_max_ids!r} must be at least 1"
            )
