"""Booking one ledger event on the book, and the rejections that depend on the book.

:meth:`Engine.apply <monitor.engine.Engine.apply>` books a cycle's ledger events in
order, one call of :func:`book_entry` each (per-event Python work: each is one message),
then revalues and judges the units they touched at once. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable

from monitor.book import Book
from monitor.engine._validation import ledger_key, shape_problem
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

__all__ = ["book_entry", "describe", "rejection_reason"]


def book_entry(
    book: Book, item: LedgerEvent, account: int, ignore: Callable[[str], None]
) -> tuple[int, ...]:
    """Book ``item`` on ``account`` (its id); return the units it touched. An isolated
    margin change the book refuses is passed to ``ignore`` with its reason instead."""
    if isinstance(item, Fill):
        symbol = book.instrument_index[item.symbol]
        fee_asset = (
            book.assets.index[item.fee_asset]
            if item.fee_asset is not None
            else int(book.settle_asset[symbol])
        )
        delta = item.qty if item.side == "buy" else -item.qty
        return book.fill(account, symbol, delta, item.price, item.fee, fee_asset)
    if isinstance(item, Transfer):
        return book.transfer(account, book.assets.index[item.asset], item.amount)
    if isinstance(item, Funding):
        return book.funding(account, book.instrument_index[item.symbol], item.amount)
    if isinstance(item, Delivery):
        return book.deliver(account, book.instrument_index[item.symbol], item.settlement_price)
    if isinstance(item, MarginSettings):
        switched = () if item.mode is None else book.set_margin_mode(account, item.mode)
        if item.leverage is not None and item.symbol is not None:
            leverage = book.set_leverage(account, book.instrument_index[item.symbol], item.leverage)
            return (*switched, *leverage)
        return switched
    symbol = book.instrument_index[item.symbol]
    problem = book.isolated_margin_problem(account, symbol, item.amount)
    if problem is not None:
        ignore(problem)
        return ()
    return book.adjust_isolated(account, symbol, item.amount)


def rejection_reason(book: Book, item: LedgerEvent | PriceTick) -> str | None:
    """Why ``item`` would be rejected by ``book`` now, or None: see
    :meth:`Engine.rejection_reason <monitor.engine.Engine.rejection_reason>`."""
    problem = shape_problem(book, item)
    if problem is not None or not isinstance(item, IsolatedMargin):
        return problem
    if ledger_key(item) in book.applied_ids:
        return None
    account = book.account_index.get(item.account)
    if account is None:
        return "not_isolated_position"
    symbol = book.instrument_index[item.symbol]
    return book.isolated_margin_problem(account, symbol, item.amount)


def describe(item: LedgerEvent | PriceTick) -> str:
    """The item, for an error message: ``fill 'f-1' of account 'acct-7'``."""
    if isinstance(item, PriceTick):
        return f"price tick {item.symbol}@{item.ts}"
    kind, item_id = ledger_key(item)
    return f"{kind} {item_id!r} of account {item.account!r}"
