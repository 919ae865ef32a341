"""The option and underlying inputs of ``liqmon evaluate``: valuation time, vols, ticks.

Kept apart from :mod:`monitor.evaluate` so that the request's option fields (``vols``,
``now``) are checked and turned into price ticks in one place: a price of an
instrument, collateral asset or underlying becomes a ``mark_price`` tick; a volatility
of an option becomes a ``mark_iv`` tick (which then sets the option's mark by
Black-76); an option given a price but no volatility has its volatility implied.
"""

from __future__ import annotations

import math

from monitor.book import Book
from monitor.errors import InputError
from monitor.models import OPTION, expiry_ms
from monitor.schema import EvaluateRequest, PriceTick

__all__ = ["option_ticks", "option_time", "unpriced_hint"]


def option_time(request: EvaluateRequest, book: Book) -> int:
    """``now`` in ms since the epoch; required when any instrument is an option."""
    if request.now is None:
        if book.contracts.has_options:
            raise InputError("$.now: required to value options (ms since the epoch or ISO 8601)")
        return 0
    try:
        now = expiry_ms(request.now)
    except ValueError as exc:
        raise InputError(f"$.now: {exc}") from None
    if now < 0:
        raise InputError(f"$.now: {now} must be >= 0 ms since the epoch")
    return now


def option_ticks(request: EvaluateRequest, book: Book, now_ms: int) -> list[PriceTick]:
    """One tick per symbol of ``prices`` and ``vols`` (both checked), at ``now_ms``."""
    for symbol, vol in request.vols.items():
        where = f"$.vols.{symbol}"
        ix = book.instrument_index.get(symbol)
        if ix is None or book.contracts.kind[ix] != OPTION:
            raise InputError(f"{where}: {symbol!r} is not an option; give vols of options only")
        if not (math.isfinite(vol) and vol > 0.0):
            raise InputError(f"{where}: volatility {vol!r} must be a finite number > 0")
    ticks = [
        PriceTick(
            symbol=symbol,
            mark_price=request.prices.get(symbol, math.nan),
            mark_iv=vol,
            ts=now_ms,
        )
        for symbol, vol in request.vols.items()
    ]
    ticks.extend(
        PriceTick(symbol=symbol, mark_price=price, ts=now_ms)
        for symbol, price in request.prices.items()
        if symbol not in request.vols
    )
    return ticks


def unpriced_hint(book: Book, ix: int) -> str:
    """What to add to the request so that instrument ``ix`` has a mark."""
    symbol = book.symbols[ix]
    if book.contracts.kind[ix] != OPTION:
        return f"no price for {symbol}; add it to prices"
    underlying = book.contracts.underlying_symbols[int(book.contracts.underlying[ix])]
    return (
        f"no mark for option {symbol}; add its underlying {underlying} to prices and its "
        f"volatility to vols (or its own price to prices)"
    )
