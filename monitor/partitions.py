"""Which ``fills`` partition each account's ledger records come from.

The service publishes an account's events only while it owns that partition, and
snapshots a partition's accounts; both ask this map. It holds one small integer per
account of the book (indexed by the book's dense account id), not a dict entry per
account name: a million accounts cost 4 MB, and a partition's accounts are one array
comparison away.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from monitor.book import Book

__all__ = ["AccountPartitions"]

_NONE = -1


class AccountPartitions:
    """The ledger partition of every account of one book.

    Accounts are noted by name as their records are read, before the engine has booked
    them; :meth:`settle` moves what the book knows by then into the array.
    """

    def __init__(self) -> None:
        self._of: NDArray[np.int32] = np.full(0, _NONE, dtype=np.int32)
        self._pending: dict[str, int] = {}

    def note(self, account: str, partition: int) -> None:
        """``account``'s records come from ``partition``."""
        self._pending[account] = partition

    def note_many(self, accounts: Iterable[str], partition: int) -> None:
        """Every one of ``accounts`` comes from ``partition``."""
        self._pending.update(dict.fromkeys(accounts, partition))

    def settle(self, book: Book) -> None:
        """Move the noted accounts that ``book`` holds now into the array."""
        if not self._pending:
            return
        size = book.accounts.size
        if self._of.shape[0] < size:
            grown = np.full(max(size, 2 * self._of.shape[0]), _NONE, dtype=np.int32)
            grown[: self._of.shape[0]] = self._of
            self._of = grown
        index, waiting = book.account_index, {}
        for account, partition in self._pending.items():
            ix = index.get(account)
            if ix is None:
                waiting[account] = partition
            else:
                self._of[ix] = partition
        self._pending = waiting

    def partition(self, book: Book, account: str) -> int | None:
        """The partition of ``account``, or None if none was noted."""
        noted = self._pending.get(account)
        if noted is not None:
            return noted
        ix = book.account_index.get(account)
        if ix is None or ix >= self._of.shape[0]:
            return None
        found = int(self._of[ix])
        return None if found == _NONE else found

    def accounts_of(self, book: Book, partition: int) -> NDArray[np.intp]:
        """The dense ids of ``book``'s accounts from ``partition``, ascending."""
        self.settle(book)
        size = min(book.accounts.size, self._of.shape[0])
        return np.flatnonzero(self._of[:size] == partition)
