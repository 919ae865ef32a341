"""Collateral assets: their haircuts, their prices, and the value of wallet balances.

Every amount the engine compares is in one *valuation asset* (default USDT), worth 1.
Other assets are worth their latest price tick (``CollateralAsset.price_symbol``)
times ``1 - haircut``; the haircut applies to positive balances only, so a debt in
an asset counts at its full value. An asset whose price has not been seen yet is
worth 0: the conservative choice until the price table is known.

Assets are fixed when the book is built: the valuation asset, then the configured
collateral assets. A transfer or fee in any other asset is rejected at the edge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from monitor.errors import ConfigError
from monitor.schema import CollateralAsset

__all__ = ["AssetTable"]


class AssetTable:
    """Assets by dense id: valuation asset is id 0, then the collateral list in order."""

    def __init__(self, valuation_asset: str, collateral: Sequence[CollateralAsset]) -> None:
        if not valuation_asset:
            raise ConfigError("valuation_asset is empty; name the asset amounts are valued in")
        names = [valuation_asset]
        haircuts = [0.0]
        self.price_symbols: dict[str, list[int]] = {}
        for spec in collateral:
            if not math.isfinite(spec.haircut) or not 0.0 <= spec.haircut < 1.0:
                raise ConfigError(
                    f"collateral {spec.asset}: haircut {spec.haircut!r} must be in [0, 1)"
                )
            if spec.asset == valuation_asset:
                haircuts[0] = spec.haircut
                continue
            if spec.asset in names:
                raise ConfigError(f"collateral {spec.asset} is listed twice; list each once")
            self.price_symbols.setdefault(spec.price_symbol or spec.asset, []).append(len(names))
            names.append(spec.asset)
            haircuts.append(spec.haircut)
        self.names: tuple[str, ...] = tuple(names)
        self.index: dict[str, int] = {name: ix for ix, name in enumerate(names)}
        self.haircut: NDArray[np.float64] = np.array(haircuts)
        # Valuation-asset value of one unit; NaN until priced (the valuation asset is 1).
        self.price: NDArray[np.float64] = np.full(len(names), np.nan)
        self.price[0] = 1.0
        self.price_ts: NDArray[np.int64] = np.full(len(names), -1, dtype=np.int64)
        self.value: NDArray[np.float64] = np.nan_to_num(self.price)

    def __len__(self) -> int:
        return len(self.names)

    def set_price(self, asset_ix: int, price: float, ts: int) -> bool:
        """Record a price for an asset; return whether its value changed."""
        self.price_ts[asset_ix] = ts
        if self.price[asset_ix] == price:
            return False
        self.price[asset_ix] = price
        self.value[asset_ix] = price
        return True

    def wallet_value(self, balances: NDArray[np.float64]) -> NDArray[np.float64]:
        """Value after haircuts of wallets given as rows of ``[n, assets]`` balances."""
        discounted = self.value * self.haircut
        result: NDArray[np.float64] = balances @ self.value
        if discounted.any():
            result -= np.maximum(balances, 0.0) @ discounted
        return result
