"""Growable columnar tables: parallel numpy arrays that double their capacity when full.

Rows are dense integer ids handed out in order and never reused, so a row id stays
valid for the life of the table. Rows at and beyond ``size`` are not for reading: the
spare capacity is left unwritten (not resident) until rows are appended near it.
Columns are plain attributes (``table.qty``); they are replaced when the table grows,
so never keep a column across an ``append``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

import numpy as np
from numpy.typing import NDArray

__all__ = ["ID", "MAX_ROWS", "Columns", "Ids", "Index"]

# Row, unit, account and instrument ids in the book's columns are 4 bytes: a million
# accounts' three million positions keep about 40 bytes a position fewer than with 8.
ID: Final = np.int32
Ids = NDArray[np.int32]
Index = NDArray[np.integer[Any]]  # ids of either width: a column's, or numpy's 8-byte
MAX_ROWS: Final = int(np.iinfo(ID).max)

_FILL_AHEAD = 4096  # rows of defaults written ahead of the rows in use, at least


class Columns:
    """Base of a table: subclasses list their columns in ``SPEC``.

    ``SPEC`` maps a column name to ``(dtype, fill, width)``: ``width`` 0 gives a 1-D
    column, ``width`` n a 2-D ``[rows, n]`` one. ``fill`` is the value of new rows.
    """

    SPEC: ClassVar[dict[str, tuple[Any, Any, int]]] = {}

    def __init__(self, capacity: int = 64, widths: dict[str, int] | None = None) -> None:
        self.size = 0
        self._capacity = max(1, capacity)
        self._widths = {name: w for name, (_, _, w) in self.SPEC.items()} | (widths or {})
        for name, (dtype, fill, _) in self.SPEC.items():
            setattr(self, name, np.full(self._shape(name, self._capacity), fill, dtype=dtype))
        self._filled = self._capacity  # rows below hold their defaults (or values)

    def _shape(self, name: str, rows: int) -> tuple[int, ...]:
        width = self._widths[name]
        return (rows, width) if width else (rows,)

    def reserve(self, rows: int) -> None:
        """Make room for ``rows`` rows in total (amortised doubling). The spare capacity is
        left unwritten, so its pages are not resident until rows are appended there (a
        doubled million-row table would otherwise hold its spare half in memory); ``append``
        writes the defaults a block ahead of the rows it hands out."""
        if rows <= self._capacity:
            return
        if rows > MAX_ROWS:
            raise OverflowError(
                f"{type(self).__name__} would hold {rows:,} rows, over its {MAX_ROWS:,} "
                "(4-byte ids): split the book across more ledger partitions and instances"
            )
        capacity = min(max(rows, 2 * self._capacity), MAX_ROWS)
        for name, (dtype, _, _) in self.SPEC.items():
            old = getattr(self, name)
            new = np.empty(self._shape(name, capacity), dtype=dtype)
            new[: self._filled] = old[: self._filled]
            setattr(self, name, new)
        self._capacity = capacity

    def append(self, rows: int = 1) -> int:
        """Add ``rows`` rows filled with their defaults; return the first new row id."""
        first = self.size
        end = first + rows
        self.reserve(end)
        if end > self._filled:  # defaults for these rows and a block beyond
            block = max(_FILL_AHEAD, self._capacity // 64)
            upto = min(self._capacity, max(end, self._filled + block))
            for name, (_, fill, _) in self.SPEC.items():
                getattr(self, name)[self._filled : upto] = fill
            self._filled = upto
        self.size = end
        return first
