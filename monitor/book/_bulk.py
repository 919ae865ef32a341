"""Bulk loading: build a large book from arrays in one vectorised pass.

Replaying millions of fills one Python call at a time takes minutes; restoring a
snapshot or building a benchmark book should not. The result is the same state
``Book.load_position`` would build row by row (cross accounts only).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from monitor.book._book import Book
from monitor.book._columns import Index

__all__ = ["load_cross_accounts"]


def load_cross_accounts(
    book: Book,
    names: Sequence[str],
    balances: NDArray[np.float64],
    account: Index,
    instrument: Index,
    qty: NDArray[np.float64],
    entry: NDArray[np.float64],
    leverage: NDArray[np.float64] | None = None,
) -> None:
    """Load cross accounts and their open positions into an empty book.

    ``balances`` is ``[accounts, assets]`` in the book's asset order; ``account`` holds
    indexes into ``names`` (distinct: ValueError otherwise). Each (account, instrument)
    pair may appear once and every ``qty`` must be non-zero. Instruments without a mark
    yet are marked at the first loaded entry price, as ``load_position`` does. Figures
    are not computed here: follow with ``Engine.full_recompute()``.
    """
    if book.accounts.size or book.positions.size:
        raise ValueError("load_cross_accounts needs an empty book")
    n_accounts, n_rows = len(names), qty.shape[0]
    if balances.shape != (n_accounts, len(book.assets)):
        raise ValueError(f"balances must be [{n_accounts}, {len(book.assets)}]")
    if np.any(qty == 0.0):
        raise ValueError("every loaded position needs a non-zero qty")
    accounts, units, pos = book.accounts, book.units, book.positions
    accounts.append(n_accounts)
    accounts.balance[:n_accounts] = balances
    units.append(n_accounts)
    units.account[:n_accounts] = np.arange(n_accounts)
    accounts.cross_unit[:n_accounts] = np.arange(n_accounts)
    book.account_index.add_many(names)

    pos.append(n_rows)
    pos.account[:n_rows] = account
    pos.instrument[:n_rows] = instrument
    pos.qty[:n_rows] = qty
    pos.entry[:n_rows] = entry
    if leverage is not None:
        pos.leverage[:n_rows] = leverage
    pos.unit[:n_rows] = account
    pos.rows.add_many(account, instrument, np.arange(n_rows))  # ValueError on a repeat

    # Unit row lists: rows grouped by unit, linked in row order.
    order = np.argsort(account, kind="stable")
    grouped = account[order]
    same_next = np.empty(n_rows, dtype=np.bool_)
    same_next[:-1] = grouped[1:] == grouped[:-1]
    same_next[-1:] = False
    nxt = np.full(n_rows, -1, dtype=np.intp)
    nxt[same_next] = order[1:][same_next[:-1]]
    pos.unit_next[order] = nxt
    prv = np.full(n_rows, -1, dtype=np.intp)
    prv[1:][same_next[:-1]] = order[:-1][same_next[:-1]]
    pos.unit_prev[order] = prv
    first = np.ones(n_rows, dtype=np.bool_)
    first[1:] = ~same_next[:-1]
    units.head[grouped[first]] = order[first]
    units.open_positions[:n_accounts] = np.bincount(account, minlength=n_accounts)

    # Holders: rows grouped by instrument.
    by_instrument = np.argsort(instrument, kind="stable")
    bounds = np.searchsorted(instrument[by_instrument], np.arange(len(book.symbols) + 1))
    for ix in range(len(book.symbols)):
        pos.set_holders(ix, by_instrument[bounds[ix] : bounds[ix + 1]])
    unmarked = np.isnan(book.mark)
    if unmarked.any():
        firsts = by_instrument[bounds[:-1][unmarked].clip(max=max(n_rows - 1, 0))]
        has_rows = bounds[1:][unmarked] > bounds[:-1][unmarked]
        targets = np.flatnonzero(unmarked)[has_rows]
        book.mark[targets] = entry[firsts[has_rows]]
