"""Why an input cannot be applied: stable snake_case reasons (metric labels, DLQ headers).

``shape_problem`` looks at the item alone and the configured instruments and assets;
``Engine.apply`` raises for these before it changes anything. A few reasons depend
on the book's state when the item is applied (see ``Engine.rejection_reason``).
"""

from __future__ import annotations

import math

from monitor.book import Book
from monitor.engine._options import tick_problem
from monitor.models import OPTION
from monitor.schema import (
    Delivery,
    Fill,
    Funding,
    IsolatedMargin,
    LedgerEvent,
    MarginSettings,
    PriceTick,
    Transfer,
)

__all__ = ["ledger_key", "shape_problem"]


def delivery_problem(book: Book, item: Delivery) -> str | None:
    """A delivery names an option, comes at or after its expiry (event time) and gives a
    finite positive settlement price."""
    ix = book.instrument_index.get(item.symbol)
    if ix is None:
        return "unknown_instrument"
    if book.contracts.kind[ix] != OPTION:
        return "delivery_not_option"
    if item.ts < book.contracts.expiry_ms[ix]:
        return "delivery_before_expiry"
    return _price(item.settlement_price)


def ledger_key(item: LedgerEvent) -> tuple[str, str]:
    """The idempotency key of a ledger event: its kind and its id."""
    if isinstance(item, Fill):
        return ("fill", item.fill_id)
    if isinstance(item, Transfer):
        return ("transfer", item.transfer_id)
    if isinstance(item, Funding):
        return ("funding", item.funding_id)
    if isinstance(item, MarginSettings):
        return ("margin_settings", item.settings_id)
    if isinstance(item, Delivery):
        return ("delivery", item.delivery_id)
    return ("isolated_margin", item.adjustment_id)


def _price(value: float) -> str | None:
    if not math.isfinite(value):
        return "non_finite_price"
    return None if value > 0.0 else "non_positive_price"


def _amount(value: float) -> str | None:
    return None if math.isfinite(value) else "non_finite_amount"


def _symbol(book: Book, symbol: str) -> str | None:
    return None if symbol in book.instrument_index else "unknown_instrument"


def shape_problem(book: Book, item: LedgerEvent | PriceTick) -> str | None:
    """The reason ``item`` is unacceptable whatever the book's state, or None."""
    if isinstance(item, PriceTick):
        if (
            item.symbol not in book.instrument_index
            and item.symbol not in book.assets.price_symbols
            and item.symbol not in book.contracts.underlying_index
        ):
            return "unknown_instrument"
        if item.mark_iv is not None:  # mark_price, if given, may be 0 (a worthless option)
            mark = item.mark_price
            return tick_problem(book, item) or (
                None if math.isnan(mark) or mark == 0.0 else _price(mark)
            )
        return _price(item.mark_price)
    if not item.account:
        return "empty_account"
    if not ledger_key(item)[1]:
        return "empty_id"
    if isinstance(item, Fill):
        if not math.isfinite(item.qty):
            return "non_finite_quantity"
        if item.qty <= 0.0:
            return "non_positive_quantity"
        if item.fee_asset is not None and item.fee_asset not in book.assets.index:
            return "unknown_asset"
        return (
            _symbol(book, item.symbol)
            or _price(item.price)
            or (None if math.isfinite(item.fee) else "non_finite_fee")
        )
    if isinstance(item, Transfer):
        if item.asset not in book.assets.index:
            return "unknown_asset"
        return _amount(item.amount)
    if isinstance(item, Funding | IsolatedMargin):
        return _symbol(book, item.symbol) or _amount(item.amount)
    if isinstance(item, Delivery):
        return delivery_problem(book, item)
    return _settings_problem(book, item)


def _settings_problem(book: Book, item: MarginSettings) -> str | None:
    if item.symbol is not None and item.symbol not in book.instrument_index:
        return "unknown_instrument"
    if item.leverage is None:
        return None
    if item.symbol is None:
        return "leverage_without_symbol"
    if not math.isfinite(item.leverage):
        return "non_finite_leverage"
    return None if item.leverage >= 1.0 else "leverage_below_one"
