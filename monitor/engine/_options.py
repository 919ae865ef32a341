"""Option marks from a cycle's ticks: price the instrument, not the position.

A tick of an underlying (the price symbol options name as ``underlying``) moves every
option on it; an option's own tick sets its volatility (``mark_iv``) or implies it from
``mark_price``. The options whose inputs moved are then priced in one vectorised
Black-76 call (``ContractTable.price_options``): mark, Greeks and short margin per base
unit are stored per instrument, and positions gather them when they are revalued. A
tick of an underlying with 2,000 options costs one Black-76 over 2,000 instruments,
however many accounts hold them.

Valuation time: each option is valued at the newest event time among its own ticks and
its underlying's (``T = (expiry - that time) / 365 days``), so the engine reads no clock
and a from-scratch revaluation gives the same marks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from monitor.book import Book, Index
from monitor.models import OPTION
from monitor.schema import PriceTick

__all__ = ["reprice_options", "tick_problem"]


def tick_problem(book: Book, tick: PriceTick) -> str | None:
    """Why an option or underlying tick is unacceptable, or None (other checks apply).

    A tick carrying ``mark_iv`` must be for an option and the volatility finite and
    > 0; it may leave ``mark_price`` out. Any other tick needs a finite positive price.
    """
    if tick.mark_iv is None:
        return None
    ix = book.instrument_index.get(tick.symbol)
    if ix is None or book.contracts.kind[ix] != OPTION:
        return "mark_iv_not_option"
    if not (math.isfinite(tick.mark_iv) and tick.mark_iv > 0.0):
        return "non_positive_volatility"
    return None


def reprice_options(book: Book, latest: Mapping[str, PriceTick]) -> dict[int, list[PriceTick]]:
    """Apply the cycle's last tick per symbol to options and underlyings; reprice what moved.

    Returns the option instruments whose mark or short margin changed, each with the
    ticks that moved it (for the events' trigger).
    """
    contracts, state = book.contracts, book.options
    triggers: dict[int, list[PriceTick]] = {}
    implied: dict[int, float] = {}
    for symbol, tick in latest.items():
        u = contracts.underlying_index.get(symbol)
        if u is not None and math.isfinite(tick.mark_price):
            state.underlying_price[u] = tick.mark_price
            state.underlying_ts[u] = max(int(state.underlying_ts[u]), tick.ts)
            for ix in contracts.options_on(u).tolist():
                triggers.setdefault(ix, []).append(tick)
        ix = book.instrument_index.get(symbol)
        if ix is not None and contracts.kind[ix] == OPTION:
            book.mark_ts[ix] = tick.ts
            state.value_ts[ix] = max(int(state.value_ts[ix]), tick.ts)
            if tick.mark_iv is not None:
                state.vol[ix] = tick.mark_iv
            else:
                implied[ix] = tick.mark_price
            triggers.setdefault(ix, []).append(tick)
    if not triggers:
        return {}
    ix_all = np.array(sorted(triggers), dtype=np.intp)
    underlying = state.underlying_price.take(contracts.underlying.take(ix_all))
    now = np.maximum(
        state.value_ts.take(ix_all), state.underlying_ts.take(contracts.underlying.take(ix_all))
    )
    state.value_ts[ix_all] = now
    if implied:
        _imply(book, ix_all, underlying, now, implied)
    priced = np.isfinite(underlying) & np.isfinite(state.vol.take(ix_all))
    ix = ix_all[priced]
    if ix.size == 0:
        return {}
    marks = contracts.price_options(
        ix, underlying[priced], state.vol.take(ix), now[priced].astype(np.float64)
    )
    changed = (
        (book.mark.take(ix) != marks.mark)
        | (state.short_initial.take(ix) != marks.short_initial)
        | (state.short_maintenance.take(ix) != marks.short_maintenance)
    )
    book.mark[ix] = marks.mark
    book.mark_ts[ix] = now[priced]
    state.greeks[ix] = marks.greeks
    state.short_initial[ix] = marks.short_initial
    state.short_maintenance[ix] = marks.short_maintenance
    return {int(k): triggers[int(k)] for k in ix[changed].tolist()}


def _imply(
    book: Book,
    ix_all: Index,
    underlying: NDArray[np.float64],
    now: NDArray[np.int64],
    implied: dict[int, float],
) -> None:
    """Set the volatility of options whose tick gave only a mark price (underlying known)."""
    wanted = np.isin(ix_all, np.fromiter(implied, dtype=np.intp)) & np.isfinite(underlying)
    ix = ix_all[wanted]
    if ix.size == 0:
        return
    marks = np.array([implied[k] for k in ix.tolist()])
    vol = book.contracts.vol_of(ix, marks, underlying[wanted], now[wanted].astype(np.float64))
    book.options.vol[ix] = vol


def option_mismatches(book: Book, limit: int) -> list[str]:
    """Option instruments whose stored mark or short margin differs from a fresh pricing
    at their stored volatility, underlying price and valuation time (beyond 1e-9 of the
    underlying's price): the per-instrument half of ``Engine.verify``."""
    contracts, state = book.contracts, book.options
    ix = contracts.options
    if ix.size == 0:
        return []
    underlying = state.underlying_price.take(contracts.underlying.take(ix))
    priced = np.isfinite(underlying) & np.isfinite(state.vol.take(ix))
    ix, underlying = ix[priced], underlying[priced]
    fresh = contracts.price_options(
        ix, underlying, state.vol.take(ix), state.value_ts.take(ix).astype(np.float64)
    )
    tolerance = 1e-9 * underlying
    found = []
    for name, stored, recomputed in (
        ("mark", book.mark.take(ix), fresh.mark),
        ("short_initial", state.short_initial.take(ix), fresh.short_initial),
        ("short_maintenance", state.short_maintenance.take(ix), fresh.short_maintenance),
    ):
        for k in np.flatnonzero(~(np.abs(stored - recomputed) <= tolerance)).tolist():
            found.append(
                f"option {book.symbols[ix[k]]}: {name} stored {stored[k]!r}, "
                f"priced afresh {recomputed[k]!r}"
            )
    return found[:limit]
