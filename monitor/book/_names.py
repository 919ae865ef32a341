"""Dense ids for names (the book's accounts), in about 30 bytes per name plus its UTF-8.

A dict of a million names to ids and the list of the names back cost about 130 MB:
the str objects (about 60 bytes each), the dict's table (about 40 MB), an int object
per id (32 MB) and the list (8 MB). :class:`NameIndex` keeps the names' UTF-8 bytes
one after the other in one uint8 array, with int64 offsets (id -> name), and finds an
id by name in an open-addressing table of int32 ids (linear probing from ``hash &
mask``; a power of two long and at most half full), keyed by each name's 64-bit
``hash()``, kept per id so the table can grow without hashing again. A hit is checked
by comparing the bytes. Python salts the hash of a str per process: that is fine, as the
table lives in one process and is never written anywhere.

Ids are handed out in order and never reused; every array doubles when full, as
``monitor.book._columns`` does, so adding is amortised O(1). A single lookup is a few
numpy reads through memoryviews (about a microsecond); adding a million names at once
(:meth:`NameIndex.add_many`) is one compiled pass (:mod:`monitor.book._name_kernels`).

Writes are not thread-safe; a reader in another thread may read the names of ids it
already knows while names are added (grown arrays hold the same bytes for old ids).
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Mapping, Sequence
from itertools import pairwise
from typing import Any, Final, SupportsIndex, TypeVar, overload

import numpy as np
from numpy.typing import NDArray

from monitor.book._name_kernels import EMPTY, gather, place

__all__ = ["NameIndex", "NamesById"]

_MAX_NAMES: Final = 2**31 - 1  # ids are int32 in the table
_ITER_BLOCK: Final = 1 << 16  # names decoded at a time when iterating

_T = TypeVar("_T")


def _utf8(name: str) -> bytes:
    """Any str, lone surrogates too (a str from a JSON ``\\ud800`` escape), as bytes."""
    return name.encode("utf-8", "surrogatepass")


def _grown(old: NDArray[Any], capacity: int, used: int) -> NDArray[Any]:
    """``old``'s first ``used`` items in a new array of ``capacity``; the rest unwritten,
    so not resident until used."""
    new = np.empty(capacity, dtype=old.dtype)
    new[:used] = old[:used]
    return new


class NameIndex(Mapping[str, int]):
    """Names to dense ids (``get``, ``[]``, ``in``, ``len``; iterating gives the names in
    id order) and ids to names (:meth:`name`, :meth:`names_of`, the :attr:`by_id`
    sequence). Names are added with :meth:`add` or :meth:`add_many`, once each."""

    def __init__(self) -> None:
        self._size = 0  # names held
        self._used = 0  # bytes of them in ``_data``
        self._data: NDArray[np.uint8] = np.empty(1024, dtype=np.uint8)
        self._offsets: NDArray[np.int64] = np.zeros(65, dtype=np.int64)  # name ix: [ix, ix + 1)
        self._hashes: NDArray[np.int64] = np.empty(64, dtype=np.int64)
        self._slots: NDArray[np.int32] = np.full(128, EMPTY, dtype=np.int32)
        self._views()
        self.by_id = NamesById(self)

    def _views(self) -> None:
        """Memoryviews of the arrays: an item read through one is a Python int at once,
        several times cheaper than through numpy (this is the per-event path)."""
        self._data_at = self._data.data
        self._offset_at = self._offsets.data
        self._hash_at = self._hashes.data
        self._slot_at = self._slots.data
        self._mask = self._slots.shape[0] - 1

    # ------------------------------------------------------------------ by name

    def __len__(self) -> int:
        return self._size

    @overload
    def get(self, name: str, /) -> int | None: ...
    @overload
    def get(self, name: str, default: int | _T, /) -> int | _T: ...
    def get(self, name: str, default: object = None, /) -> object:
        """The id of ``name``, or ``default`` when it has none."""
        h = hash(name)
        slot_at, hash_at, mask = self._slot_at, self._hash_at, self._mask
        at = h & mask
        ix = slot_at[at]
        while ix != EMPTY:
            if hash_at[ix] == h:
                offset_at = self._offset_at
                if self._data_at[offset_at[ix] : offset_at[ix + 1]] == _utf8(name):
                    return ix
            at = (at + 1) & mask
            ix = slot_at[at]
        return default

    def __getitem__(self, name: str) -> int:
        ix = self.get(name)
        if ix is None:
            raise KeyError(name)
        return ix

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_id)

    # ------------------------------------------------------------------ by id

    def name(self, ix: int) -> str:
        """The name of id ``ix`` (0 <= ix < len); IndexError otherwise."""
        if not 0 <= ix < self._size:
            raise IndexError(f"no name has id {ix}; ids run from 0 to {self._size - 1}")
        offset_at = self._offset_at
        return str(self._data_at[offset_at[ix] : offset_at[ix + 1]], "utf-8", "surrogatepass")

    def names_of(self, ids: NDArray[np.integer[Any]]) -> list[str]:
        """The names of ``ids``, in their order: one compiled gather and one decode for
        the lot, then a slice per name."""
        wanted = np.ascontiguousarray(ids, dtype=np.int64)  # the type the kernel is warmed for
        if wanted.size and (int(wanted.min()) < 0 or int(wanted.max()) >= self._size):
            raise IndexError(f"ids must run from 0 to {self._size - 1}")
        packed, bounds = gather(self._data, self._offsets, wanted)
        text = str(packed.data, "utf-8", "surrogatepass")
        return [text[start:end] for start, end in pairwise(bounds.tolist())]

    # ------------------------------------------------------------------ adding

    def add(self, name: str) -> int:
        """Give ``name`` the next id and return it; ValueError if it has one already."""
        if self.get(name) is not None:
            raise ValueError(f"name {name!r} is in the index already")
        encoded, ix, h = _utf8(name), self._size, hash(name)
        end = self._used + len(encoded)
        self._reserve(ix + 1, end)
        self._data_at[self._used : end] = encoded
        self._offset_at[ix + 1] = end
        self._hash_at[ix] = h
        slot_at, mask = self._slot_at, self._mask
        at = h & mask
        while slot_at[at] != EMPTY:
            at = (at + 1) & mask
        slot_at[at] = ix
        self._size, self._used = ix + 1, end
        return ix

    def add_many(self, names: Sequence[str]) -> int:
        """Give ``names`` the next ids, in order, and return the first. ValueError, with
        nothing added, if one of them is in the index already or is given twice."""
        first, n = self._size, len(names)
        if n == 0:
            return first
        joined = "".join(names)
        blob = _utf8(joined)
        if len(blob) == len(joined):  # all ASCII: a character is a byte
            lengths = np.fromiter(map(len, names), dtype=np.int64, count=n)
        else:
            parts = [_utf8(name) for name in names]
            blob = b"".join(parts)
            lengths = np.fromiter(map(len, parts), dtype=np.int64, count=n)
        hashes = np.fromiter(map(hash, names), dtype=np.int64, count=n)
        end = self._used + len(blob)
        self._reserve(first + n, end)
        self._data[self._used : end] = np.frombuffer(blob, dtype=np.uint8)
        np.cumsum(lengths, out=self._offsets[first + 1 : first + n + 1])
        self._offsets[first + 1 : first + n + 1] += self._used
        self._hashes[first : first + n] = hashes
        clash = place(self._slots, self._hashes, self._offsets, self._data, first, first + n)
        if clash != EMPTY:
            self._slots[self._slots >= first] = EMPTY  # they took free slots only
            raise ValueError(
                f"name {names[clash - first]!r} is in the index already or given twice"
            )
        self._size, self._used = first + n, end
        return first

    def _reserve(self, names: int, data_bytes: int) -> None:
        """Room for ``names`` names of ``data_bytes`` bytes in all (amortised doubling),
        and a table at most half full with them."""
        if names > _MAX_NAMES:
            raise ValueError(f"a name index holds at most {_MAX_NAMES} names")
        capacity, grown = self._hashes.shape[0], False
        if names > capacity:
            capacity, grown = max(names, 2 * capacity), True
            self._hashes = _grown(self._hashes, capacity, self._size)
            self._offsets = _grown(self._offsets, capacity + 1, self._size + 1)
        if data_bytes > self._data.shape[0]:
            grown = True
            self._data = _grown(self._data, max(data_bytes, 2 * self._data.shape[0]), self._used)
        if 2 * names > self._slots.shape[0]:
            size, grown = self._slots.shape[0], True
            while size < 2 * names:
                size *= 2
            slots = np.full(size, EMPTY, dtype=np.int32)
            place(slots, self._hashes, self._offsets, self._data, 0, self._size)
            self._slots = slots
        if grown:
            self._views()


class NamesById(Sequence[str]):
    """The names of a :class:`NameIndex` by id, as a read-only sequence (a view: it
    grows with the index)."""

    __slots__ = ("_index",)

    def __init__(self, index: NameIndex) -> None:
        self._index = index

    def __len__(self) -> int:
        return len(self._index)

    @overload
    def __getitem__(self, ix: SupportsIndex) -> str: ...
    @overload
    def __getitem__(self, ix: slice) -> list[str]: ...
    def __getitem__(self, ix: SupportsIndex | slice) -> str | list[str]:
        if isinstance(ix, slice):
            ids = range(len(self._index))[ix]
            return self._index.names_of(np.arange(ids.start, ids.stop, ids.step))
        at = operator.index(ix)
        return self._index.name(at + len(self._index) if at < 0 else at)

    def of_ids(self, ids: NDArray[np.integer[Any]]) -> list[str]:
        """The names of ``ids``, in their order, in one go (``NameIndex.names_of``: a
        crash's tens of thousands of events name their accounts at once)."""
        return self._index.names_of(ids)

    def __eq__(self, other: object) -> bool:
        """Equal to a list, tuple or view of the same names in the same order (as the list
        it replaces was)."""
        if not isinstance(other, NamesById | list | tuple):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # mutable, as a list

    def __iter__(self) -> Iterator[str]:
        index = self._index
        for first in range(0, len(index), _ITER_BLOCK):
            yield from index.names_of(np.arange(first, min(first + _ITER_BLOCK, len(index))))
