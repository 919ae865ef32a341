"""Growable columnar tables: parallel numpy arrays that double their capacity when full.

Rows are dense integer ids handed out in order and never reused, so a row id stays
valid for the life of the table. Columns are plain attributes (``table.qty``); they
are replaced when the table grows, so never keep a column across an ``append``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

__all__ = ["Columns"]


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

    def _shape(self, name: str, rows: int) -> tuple[int, ...]:
        width = self._widths[name]
        return (rows, width) if width else (rows,)

    def reserve(self, rows: int) -> None:
        """Make room for ``rows`` rows in total (amortised doubling)."""
        if rows <= self._capacity:
            return
        capacity = max(rows, 2 * self._capacity)
        for name, (dtype, fill, _) in self.SPEC.items():
            old = getattr(self, name)
            new = np.full(self._shape(name, capacity), fill, dtype=dtype)
            new[: self.size] = old[: self.size]
            setattr(self, name, new)
        self._capacity = capacity

    def append(self, rows: int = 1) -> int:
        """Add ``rows`` rows filled with their defaults; return the first new row id."""
        first = self.size
        self.reserve(first + rows)
        self.size = first + rows
        return first
