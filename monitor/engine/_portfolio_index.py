"""Which portfolio accounts hold an underlying group, and their position rows, by holder.

A tick of an underlying recomputes the group's figures for every portfolio account
holding it (:mod:`monitor.engine._portfolio`). The holders and their rows change only when
the ledger opens, closes or moves a position, or switches an account's margin mode, not
when a price moves; so the group's :class:`HolderIndex` (holders in account order, their
open cross rows compressed by holder and sorted by instrument) is built once and kept
until the ledger touches one of its accounts. Quantities are read through the rows at each
use, so a fill that only resizes a position would need no rebuild; the engine rebuilds
anyway on any ledger touch, which keeps the rule simple and is one pass of
:func:`build_index`.

:func:`build_index` filters candidate rows (open, in a portfolio account's cross unit) and
sorts them by (account, instrument) in one counting-sort pass when numba is installed;
:func:`build_index_reference` is the numpy version it is tested against
(``tests/unit/test_scenarios_fused.py``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from monitor.book import PORTFOLIO, Book, Index
from monitor.compiled import compiled

__all__ = ["HolderIndex", "build_index", "build_index_reference", "covers"]

Ints = Index


class HolderIndex(NamedTuple):
    """A group's portfolio holders (ascending account ids) and their rows: holder ``h``
    holds position rows ``rows[indptr[h]:indptr[h + 1]]``, of the group's instruments
    ``col[...]`` (ascending within a holder)."""

    accounts: Ints
    indptr: Ints
    rows: Ints
    col: Ints

    @property
    def size(self) -> int:
        return int(self.accounts.shape[0])


def _keep(book: Book, rows: Ints) -> NDArray[np.bool_]:
    pos = book.positions
    account = pos.account[rows]
    keep: NDArray[np.bool_] = (
        (pos.qty[rows] != 0.0)
        & (book.accounts.mode[account] == PORTFOLIO)
        & (pos.unit[rows] == book.accounts.cross_unit[account])
    )
    return keep


def build_index_reference(book: Book, rows: Ints, col_of: Ints) -> HolderIndex:
    """Readable version: keep the open portfolio cross rows among ``rows`` (distinct),
    sort them by (account, instrument column ``col_of[instrument]``), compress by account."""
    pos = book.positions
    rows = rows[_keep(book, rows)]
    account = pos.account[rows]
    col = col_of[pos.instrument[rows]]
    order = np.lexsort((col, account))
    rows, account, col = rows[order], account[order], col[order]
    accounts, counts = np.unique(account, return_counts=True)
    indptr = np.zeros(accounts.shape[0] + 1, dtype=np.intp)
    np.cumsum(counts, out=indptr[1:])
    return HolderIndex(accounts.astype(np.intp), indptr, rows, col.astype(np.intp))


def _counting_sort(
    rows: Any,
    pos_account: Any,
    pos_instrument: Any,
    pos_qty: Any,
    pos_unit: Any,
    mode: Any,
    cross_unit: Any,
    col_of: Any,
    n_accounts: int,
    portfolio: int,
) -> Any:  # pragma: no cover - compiled by numba; checked against the reference
    count = np.zeros(n_accounts + 1, dtype=np.intp)
    keep = np.zeros(rows.shape[0], dtype=np.bool_)
    for i in range(rows.shape[0]):
        r = rows[i]
        a = pos_account[r]
        if pos_qty[r] != 0.0 and mode[a] == portfolio and pos_unit[r] == cross_unit[a]:
            keep[i] = True
            count[a + 1] += 1
    holders = 0
    for a in range(n_accounts):
        if count[a + 1] > 0:
            holders += 1
    accounts = np.empty(holders, dtype=np.intp)
    indptr = np.empty(holders + 1, dtype=np.intp)
    indptr[0] = 0
    h = 0
    for a in range(n_accounts):  # count[a] becomes the first slot of account a
        c = count[a + 1]
        count[a + 1] = count[a] + c
        if c > 0:
            accounts[h] = a
            indptr[h + 1] = count[a + 1]
            h += 1
    total = count[n_accounts]
    out_rows = np.empty(total, dtype=np.intp)
    out_col = np.empty(total, dtype=np.intp)
    for i in range(rows.shape[0]):
        if keep[i]:
            r = rows[i]
            a = pos_account[r]
            slot = count[a]
            out_rows[slot] = r
            out_col[slot] = col_of[pos_instrument[r]]
            count[a] = slot + 1
    for h in range(holders):  # a holder has few rows in a group: insertion sort by column
        for p in range(indptr[h] + 1, indptr[h + 1]):
            c, r = out_col[p], out_rows[p]
            q = p - 1
            while q >= indptr[h] and out_col[q] > c:
                out_col[q + 1] = out_col[q]
                out_rows[q + 1] = out_rows[q]
                q -= 1
            out_col[q + 1] = c
            out_rows[q + 1] = r
    return accounts, indptr, out_rows, out_col


_kernel: Any = compiled(_counting_sort)


def build_index(book: Book, rows: Ints, col_of: Ints) -> HolderIndex:
    """:func:`build_index_reference`, in one counting-sort pass when numba is installed."""
    if _kernel is None:
        return build_index_reference(book, rows, col_of)
    pos, accounts = book.positions, book.accounts
    return HolderIndex(
        *_kernel(
            rows.astype(np.intp, copy=False),
            pos.account,
            pos.instrument,
            pos.qty,
            pos.unit,
            accounts.mode,
            accounts.cross_unit,
            col_of,
            accounts.size,
            PORTFOLIO,
        )
    )


def covers(book: Book, index: HolderIndex, accounts: Ints, rows: Ints) -> bool:
    """Whether ``index`` is still right for ``accounts`` (ledger-touched, ascending), whose
    open portfolio cross rows in the group are now ``rows``: each of those rows is indexed,
    every other indexed row of theirs is flat (it adds nothing), and none of them left
    portfolio margin. A fill resizing a position keeps the index; opening one, moving one
    to an isolated unit or switching the account's mode does not."""
    slot = np.searchsorted(index.accounts, accounts)
    found = slot < index.size
    found[found] = index.accounts[slot[found]] == accounts[found]
    if not found.any():
        return rows.size == 0
    if bool((book.accounts.mode[accounts[found]] != PORTFOLIO).any()):
        return False
    start, end = index.indptr[slot[found]], index.indptr[slot[found] + 1]
    length = end - start
    offset = np.repeat(start - (np.cumsum(length) - length), length)
    indexed = index.rows[np.arange(int(length.sum())) + offset]
    if not bool(np.isin(rows, indexed).all()):
        return False
    others = indexed[~np.isin(indexed, rows)]
    return not bool((book.positions.qty[others] != 0.0).any())
