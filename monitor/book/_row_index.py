"""The ``(account, instrument) -> position row`` index, in a few bytes per row.

A dict of tuple keys costs about 170 bytes per position (the tuple, two Python ints,
the row int, the table slot): half a gigabyte for three million positions, more than
all the position columns together. Here a pair is one int64 key, ``account x
instruments + instrument``; rows loaded in bulk (snapshot restore, benchmarks) sit in
sorted key and row arrays (12 bytes per row, found by binary search), and rows created
one at a time by fills go to a small dict that is merged into the arrays when it has
grown to an eighth of them (one linear merge; amortised, a few bytes per new row).
"""

from __future__ import annotations

from typing import Final, overload

import numpy as np
from numpy.typing import NDArray

from monitor.book._columns import ID, Ids

__all__ = ["RowIndex"]

_MERGE_MIN: Final = 1 << 16  # recent rows kept in the dict before any merge


class RowIndex:
    """Position row by ``(account_ix, instrument_ix)``; a mapping for the few methods
    the book uses (``get``, ``[]``, ``[] =``, ``len``) plus :meth:`add_many`."""

    def __init__(self, n_instruments: int) -> None:
        self._width = max(1, n_instruments)
        self._keys: NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self._rows: Ids = np.empty(0, dtype=ID)
        self._recent: dict[int, int] = {}

    def __len__(self) -> int:
        return int(self._keys.shape[0]) + len(self._recent)

    def _key(self, pair: tuple[int, int]) -> int:
        return int(pair[0]) * self._width + int(pair[1])

    @overload
    def get(self, pair: tuple[int, int]) -> int | None: ...
    @overload
    def get(self, pair: tuple[int, int], default: int) -> int: ...
    def get(self, pair: tuple[int, int], default: int | None = None) -> int | None:
        key = self._key(pair)
        row = self._recent.get(key)
        if row is not None:
            return row
        keys = self._keys
        at = int(np.searchsorted(keys, key))
        if at < keys.shape[0] and keys[at] == key:
            return int(self._rows[at])
        return default

    def __getitem__(self, pair: tuple[int, int]) -> int:
        row = self.get(pair)
        if row is None:
            raise KeyError(pair)
        return row

    def __setitem__(self, pair: tuple[int, int], row: int) -> None:
        """Index a new pair (the book creates each pair's row once)."""
        self._recent[self._key(pair)] = int(row)
        if len(self._recent) >= max(_MERGE_MIN, self._keys.shape[0] // 8):
            self._merge(
                np.fromiter(self._recent.keys(), dtype=np.int64, count=len(self._recent)),
                np.fromiter(self._recent.values(), dtype=ID, count=len(self._recent)),
            )
            self._recent.clear()

    def add_many(
        self,
        account: NDArray[np.integer],
        instrument: NDArray[np.integer],
        rows: NDArray[np.integer],
    ) -> None:
        """Index many new pairs at once; ValueError if a pair is there already or twice."""
        keys = account.astype(np.int64) * self._width + instrument.astype(np.int64)
        self._merge(keys, rows.astype(ID))

    def _merge(self, keys: NDArray[np.int64], rows: Ids) -> None:
        order = np.argsort(keys, kind="stable")
        keys, rows = keys[order], rows[order]
        if keys.shape[0] > 1 and bool(np.any(keys[1:] == keys[:-1])):
            raise ValueError("an (account, instrument) pair appears more than once")
        at = np.searchsorted(self._keys, keys)
        found = at < self._keys.shape[0]
        if bool(np.any(self._keys[at[found]] == keys[found])):
            raise ValueError("an (account, instrument) pair appears more than once")
        self._keys = np.insert(self._keys, at, keys)
        self._rows = np.insert(self._rows, at, rows)
