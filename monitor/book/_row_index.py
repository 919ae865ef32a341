"""The ``(account, instrument) -> position row`` index, in a few bytes per row.

A dict of tuple keys costs about 170 bytes per position (the tuple, two Python ints,
the row int, the table slot): half a gigabyte for three million positions, more than
all the position columns together. Here a pair is one int64 key, ``account x
instruments + instrument``, and rows sit in sorted key and row arrays (12 bytes a row,
found by binary search) at two levels:

* the *main* arrays, which rows loaded in bulk (snapshot restore, benchmarks) go to;
* the *recent* arrays, small beside them, for rows created one at a time by fills.

A row created by a fill waits in a dict of at most :data:`PENDING_MAX` entries (a
dict entry costs about 65 bytes), which is merged into the recent arrays when full; the
recent arrays are merged into the main ones when they have grown to an eighth of them.
Each merge is linear in what it merges into, so a new row costs a few bytes and,
amortised, a few element moves; a lookup is a dict probe and two binary searches.
Before the recent level, the dict itself held up to an eighth of all rows: 25 MB at three
million positions.
"""

from __future__ import annotations

from typing import Final, overload

import numpy as np
from numpy.typing import NDArray

from monitor.book._columns import ID, Ids

__all__ = ["PENDING_MAX", "RowIndex"]

PENDING_MAX: Final = 1 << 13  # rows in the dict before it is merged into the recent arrays
_MERGE_MIN: Final = 1 << 16  # rows in the recent arrays before any merge into the main


class RowIndex:
    """Position row by ``(account_ix, instrument_ix)``; a mapping for the few methods
    the book uses (``get``, ``[]``, ``[] =``, ``len``) plus :meth:`add_many`.
    ``pending_max`` and ``merge_min`` set the two merges (see the module text)."""

    def __init__(
        self, n_instruments: int, pending_max: int = PENDING_MAX, merge_min: int = _MERGE_MIN
    ) -> None:
        self._width = max(1, n_instruments)
        self._pending_max = pending_max
        self._merge_min = merge_min
        self._keys: NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self._rows: Ids = np.empty(0, dtype=ID)
        self._recent_keys: NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self._recent_rows: Ids = np.empty(0, dtype=ID)
        self._pending: dict[int, int] = {}

    def __len__(self) -> int:
        return int(self._keys.shape[0]) + int(self._recent_keys.shape[0]) + len(self._pending)

    def _key(self, pair: tuple[int, int]) -> int:
        return int(pair[0]) * self._width + int(pair[1])

    @overload
    def get(self, pair: tuple[int, int]) -> int | None: ...
    @overload
    def get(self, pair: tuple[int, int], default: int) -> int: ...
    def get(self, pair: tuple[int, int], default: int | None = None) -> int | None:
        key = self._key(pair)
        row = self._pending.get(key)
        if row is not None:
            return row
        for keys, rows in ((self._keys, self._rows), (self._recent_keys, self._recent_rows)):
            if keys.shape[0]:  # the main arrays first: most rows are there
                at = int(np.searchsorted(keys, key))
                if at < keys.shape[0] and keys[at] == key:
                    return int(rows[at])
        return default

    def __getitem__(self, pair: tuple[int, int]) -> int:
        row = self.get(pair)
        if row is None:
            raise KeyError(pair)
        return row

    def __setitem__(self, pair: tuple[int, int], row: int) -> None:
        """Index a new pair (the book creates each pair's row once)."""
        self._pending[self._key(pair)] = int(row)
        if len(self._pending) >= self._pending_max:
            self._take_pending()
            if self._recent_keys.shape[0] >= max(self._merge_min, self._keys.shape[0] // 8):
                self._take_recent()

    def add_many(
        self,
        account: NDArray[np.integer],
        instrument: NDArray[np.integer],
        rows: NDArray[np.integer],
    ) -> None:
        """Index many new pairs at once; ValueError if a pair is there already or twice."""
        self._take_pending()
        self._take_recent()
        keys = account.astype(np.int64) * self._width + instrument.astype(np.int64)
        self._keys, self._rows = _merged(self._keys, self._rows, keys, rows.astype(ID))

    def _take_pending(self) -> None:
        """Merge the dict into the recent arrays."""
        if not self._pending:
            return
        n = len(self._pending)
        keys = np.fromiter(self._pending.keys(), dtype=np.int64, count=n)
        rows = np.fromiter(self._pending.values(), dtype=ID, count=n)
        self._pending = {}
        self._recent_keys, self._recent_rows = _merged(
            self._recent_keys, self._recent_rows, keys, rows
        )

    def _take_recent(self) -> None:
        """Merge the recent arrays into the main ones."""
        if not self._recent_keys.shape[0]:
            return
        self._keys, self._rows = _merged(
            self._keys, self._rows, self._recent_keys, self._recent_rows
        )
        self._recent_keys = np.empty(0, dtype=np.int64)
        self._recent_rows = np.empty(0, dtype=ID)


def _merged(
    keys: NDArray[np.int64], rows: Ids, new_keys: NDArray[np.int64], new_rows: Ids
) -> tuple[NDArray[np.int64], Ids]:
    """The sorted ``keys``/``rows`` with the new pairs in; ValueError if a key repeats."""
    order = np.argsort(new_keys, kind="stable")
    new_keys, new_rows = new_keys[order], new_rows[order]
    if new_keys.shape[0] > 1 and bool(np.any(new_keys[1:] == new_keys[:-1])):
        raise ValueError("an (account, instrument) pair appears more than once")
    at = np.searchsorted(keys, new_keys)
    found = at < keys.shape[0]
    if bool(np.any(keys[at[found]] == new_keys[found])):
        raise ValueError("an (account, instrument) pair appears more than once")
    return np.insert(keys, at, new_keys), np.insert(rows, at, new_rows)
