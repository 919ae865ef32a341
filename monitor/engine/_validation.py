"""Why an input cannot be applied: stable snake_case reasons (metric labels, DLQ headers).

``shape_problem`` looks at the item alone and the configured instruments and assets;
``Engine.apply`` raises for these before it changes anything. A few reasons depend
on the book's state when the item is applied (see ``Engine.rejection_reason``).

Every number is bounded so that every figure derived from it stays finite in float64
(docs/operations.md, "Input limits"): prices in ``(0, MAX_PRICE]``, quantities in
``(0, MAX_QUANTITY]``, amounts and fees within ``MAX_AMOUNT`` in size, leverage in
``[1, MAX_LEVERAGE]`` and timestamps in ``[0, MAX_TS_MS]`` (ms since the epoch, before
2100). A billion such positions in one account still sum to well under 1e300.
Timestamps relative to the wall clock are the service's business (``monitor.intake``).
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

__all__ = [
    "MAX_AMOUNT",
    "MAX_LEVERAGE",
    "MAX_PRICE",
    "MAX_QUANTITY",
    "MAX_TS_MS",
    "MAX_VOLATILITY",
    "SHAPE_REASONS",
    "ledger_key",
    "shape_problem",
]

MAX_PRICE = 1e12
"""Largest accepted price (mark, fill, settlement), in quote units per contract unit."""
MAX_QUANTITY = 1e12
"""Largest accepted fill quantity, in contracts."""
MAX_AMOUNT = 1e15
"""Largest accepted size of a transfer, funding payment, margin adjustment or fee."""
MAX_LEVERAGE = 10_000.0
"""Largest accepted chosen leverage."""
MAX_VOLATILITY = 100.0
"""Largest accepted annualised implied volatility (100 = 10,000 %)."""
MAX_TS_MS = 4_102_444_800_000
"""2100-01-01T00:00:00Z: no event time in ms since the epoch is later than this."""

SHAPE_REASONS = (
    "amount_out_of_range",
    "delivery_before_expiry",
    "delivery_not_option",
    "empty_account",
    "empty_id",
    "fee_out_of_range",
    "leverage_below_one",
    "leverage_out_of_range",
    "leverage_without_symbol",
    "mark_iv_not_option",
    "non_finite_amount",
    "non_finite_fee",
    "non_finite_leverage",
    "non_finite_price",
    "non_finite_quantity",
    "non_positive_price",
    "non_positive_quantity",
    "non_positive_volatility",
    "price_out_of_range",
    "quantity_out_of_range",
    "ts_out_of_range",
    "unknown_asset",
    "unknown_instrument",
    "volatility_out_of_range",
)
"""Every reason ``shape_problem`` can give (metric labels are created for each up front)."""


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
    if value <= 0.0:
        return "non_positive_price"
    return None if value <= MAX_PRICE else "price_out_of_range"


def _amount(value: float) -> str | None:
    if not math.isfinite(value):
        return "non_finite_amount"
    return None if abs(value) <= MAX_AMOUNT else "amount_out_of_range"


def _ts(value: int) -> str | None:
    return None if 0 <= value <= MAX_TS_MS else "ts_out_of_range"


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
        problem = _ts(item.ts)
        if problem is not None:
            return problem
        if item.mark_iv is not None:  # mark_price, if given, may be 0 (a worthless option)
            if math.isfinite(item.mark_iv) and item.mark_iv > MAX_VOLATILITY:
                return "volatility_out_of_range"
            mark = item.mark_price
            return tick_problem(book, item) or (
                None if math.isnan(mark) or mark == 0.0 else _price(mark)
            )
        return _price(item.mark_price)
    if not item.account:
        return "empty_account"
    if not ledger_key(item)[1]:
        return "empty_id"
    problem = _ts(item.ts)
    if problem is not None:
        return problem
    if isinstance(item, Fill):
        if not math.isfinite(item.qty):
            return "non_finite_quantity"
        if item.qty <= 0.0:
            return "non_positive_quantity"
        if item.qty > MAX_QUANTITY:
            return "quantity_out_of_range"
        if item.fee_asset is not None and item.fee_asset not in book.assets.index:
            return "unknown_asset"
        return _symbol(book, item.symbol) or _price(item.price) or _fee(item.fee)
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
    if item.leverage < 1.0:
        return "leverage_below_one"
    return None if item.leverage <= MAX_LEVERAGE else "leverage_out_of_range"


def _fee(value: float) -> str | None:
    if not math.isfinite(value):
        return "non_finite_fee"
    return None if abs(value) <= MAX_AMOUNT else "fee_out_of_range"
