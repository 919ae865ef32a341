"""What liqmon reads: price ticks and the ledger (unknown fields ignored, ``gc=False``)."""

from __future__ import annotations

import math
from typing import Literal

import msgspec

from monitor.schema._common import AccountMode, Id

__all__ = [
    "Delivery",
    "Fill",
    "Funding",
    "IsolatedMargin",
    "LedgerEvent",
    "MarginSettings",
    "PriceTick",
    "Transfer",
]

# --------------------------------------------------------------------------- prices


class PriceTick(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """The newest mark price of one instrument (topic ``prices``, key = symbol).

    A tick for a collateral asset itself (e.g. ``symbol="BTC"`` priced in the
    valuation asset) values collateral held in that asset; a tick for an option's
    ``underlying`` revalues every option on it. An option's tick may carry
    ``mark_iv`` (annualised, 0.45 = 45 %), which then sets its mark by Black-76, and
    may leave ``mark_price`` out; with only ``mark_price`` (in the settle asset per
    base unit) the implied volatility is solved from it. Fields left at their default
    are left out of the JSON (JSON has no NaN for an absent ``mark_price``).
    """

    symbol: Id
    mark_price: float = math.nan
    ts: int
    index_price: float | None = None
    mark_iv: float | None = None


# --------------------------------------------------------------------------- ledger


class Fill(msgspec.Struct, tag="fill", tag_field="type", frozen=True, kw_only=True, gc=False):
    """A trade of ``account``. ``qty`` is positive; ``side`` gives the direction.

    ``fee`` is charged in ``fee_asset`` (the instrument's settle asset when absent);
    a negative fee is a rebate. Fills are idempotent by ``fill_id``.
    """

    fill_id: Id
    account: Id
    symbol: Id
    side: Literal["buy", "sell"]
    qty: float
    price: float
    ts: int
    fee: float = 0.0
    fee_asset: Id | None = None


class Transfer(
    msgspec.Struct, tag="transfer", tag_field="type", frozen=True, kw_only=True, gc=False
):
    """A deposit (``amount`` > 0) or withdrawal (``amount`` < 0) of collateral."""

    transfer_id: Id
    account: Id
    asset: Id
    amount: float
    ts: int


class Funding(msgspec.Struct, tag="funding", tag_field="type", frozen=True, kw_only=True, gc=False):
    """A funding payment on a perpetual position, in the instrument's settle asset.

    ``amount`` > 0 is received by the account, < 0 is paid by it.
    """

    funding_id: Id
    account: Id
    symbol: Id
    amount: float
    ts: int


class MarginSettings(
    msgspec.Struct, tag="margin_settings", tag_field="type", frozen=True, kw_only=True, gc=False
):
    """Change an account's margin mode, or the leverage it chose on one instrument.

    Fields left out are unchanged. ``leverage`` needs ``symbol``.
    """

    settings_id: Id
    account: Id
    ts: int
    mode: AccountMode | None = None
    symbol: Id | None = None
    leverage: float | None = None


class IsolatedMargin(
    msgspec.Struct, tag="isolated_margin", tag_field="type", frozen=True, kw_only=True, gc=False
):
    """Move collateral between the account's wallet and one isolated position.

    ``amount`` > 0 allocates margin to the position, < 0 releases it back.
    """

    adjustment_id: Id
    account: Id
    symbol: Id
    amount: float
    ts: int


class Delivery(
    msgspec.Struct, tag="delivery", tag_field="type", frozen=True, kw_only=True, gc=False
):
    """Settle an account's expired option position at ``settlement_price``.

    ``settlement_price`` is the underlying's settlement price (quote units). The
    position is closed and its intrinsic value at that price, in the settle asset,
    moves to (a long) or from (a short) the wallet. Idempotent by ``delivery_id``.
    """

    delivery_id: Id
    account: Id
    symbol: Id
    settlement_price: float
    ts: int


LedgerEvent = Fill | Transfer | Funding | MarginSettings | IsolatedMargin | Delivery
