"""The two bulk passes of the name index (:mod:`monitor.book._names`), with their references.

* :func:`place`: put a run of new ids into the open-addressing table (linear probing from
  ``hash & mask``), stopping at the first id whose name is there already. A snapshot
  restore or a bulk build adds a million names at once: one compiled pass, where a
  Python loop over them would take seconds.
* :func:`gather`: the UTF-8 bytes of many names, packed in one array, and where each
  name's characters end in their decoded text, so that a block of names decodes with one
  ``decode`` and a slice per name.

Compiled on first use, cached on disk, releasing the GIL; :func:`warm_up` compiles them
ahead. ``tests/unit/test_book_name_kernels.py`` checks each against its reference.
"""

from __future__ import annotations

import time
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from monitor.compiled import compiled

__all__ = ["EMPTY", "gather", "gather_reference", "place", "place_reference", "warm_up"]

EMPTY: Final = -1
"""A free slot of the table."""

Bytes = NDArray[np.uint8]
Ints = NDArray[np.int64]
Slots = NDArray[np.int32]


def place_reference(
    slots: Slots, hashes: Ints, offsets: Ints, data: Bytes, first: int, end: int
) -> int:
    """Readable version: put ids ``first`` to ``end - 1`` into ``slots`` (a power of two
    long, at most half full), each at the first free slot from ``hashes[id] & mask`` on.
    Returns -1, or the first of them whose name (bytes ``data[offsets[id]:offsets[id + 1]]``)
    is in the table already, from an earlier id; the ids before it stay placed."""
    mask = slots.shape[0] - 1
    for ix in range(first, end):
        name = data[offsets[ix] : offsets[ix + 1]].tobytes()
        at = int(hashes[ix]) & mask
        while slots[at] != EMPTY:
            other = int(slots[at])
            if (
                hashes[other] == hashes[ix]
                and data[offsets[other] : offsets[other + 1]].tobytes() == name
            ):
                return ix
            at = (at + 1) & mask
        slots[at] = ix
    return -1


def _place(
    slots: Any, hashes: Any, offsets: Any, data: Any, first: int, end: int
) -> int:  # pragma: no cover - compiled by numba; checked against the reference
    mask = slots.shape[0] - 1
    for ix in range(first, end):
        h = hashes[ix]
        start, length = offsets[ix], offsets[ix + 1] - offsets[ix]
        at = h & mask
        while slots[at] != EMPTY:
            other = slots[at]
            if hashes[other] == h and offsets[other + 1] - offsets[other] == length:
                base, same = offsets[other], True
                for k in range(length):
                    if data[base + k] != data[start + k]:
                        same = False
                        break
                if same:
                    return ix
            at = (at + 1) & mask
        slots[at] = ix
    return -1


def gather_reference(data: Bytes, offsets: Ints, ids: Ints) -> tuple[Bytes, Ints]:
    """Readable version: the bytes of the names of ``ids``, one after the other, and the
    character offsets of each name in their decoded text (``len(ids) + 1`` of them, from
    0). A character starts at every byte that is not a UTF-8 continuation byte."""
    starts = offsets[ids]
    lengths = offsets[ids + 1] - starts
    shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    packed = data[np.arange(int(lengths.sum())) + shift]
    owner = np.repeat(np.arange(ids.shape[0]), lengths)
    leading = (packed & 0xC0) != 0x80
    chars = np.bincount(owner, weights=leading, minlength=ids.shape[0]).astype(np.int64)
    bounds = np.zeros(ids.shape[0] + 1, dtype=np.int64)
    np.cumsum(chars, out=bounds[1:])
    return packed, bounds


def _gather(
    data: Any, offsets: Any, ids: Any
) -> Any:  # pragma: no cover - compiled by numba; checked against the reference
    total = 0
    for k in range(ids.shape[0]):
        total += offsets[ids[k] + 1] - offsets[ids[k]]
    packed = np.empty(total, dtype=np.uint8)
    bounds = np.empty(ids.shape[0] + 1, dtype=np.int64)
    bounds[0] = 0
    at, chars = 0, 0
    for k in range(ids.shape[0]):
        for b in range(offsets[ids[k]], offsets[ids[k] + 1]):
            byte = data[b]
            packed[at] = byte
            at += 1
            if (byte & 0xC0) != 0x80:
                chars += 1
        bounds[k + 1] = chars
    return packed, bounds


_place_kernel: Any = compiled(_place)
_gather_kernel: Any = compiled(_gather)


def place(slots: Slots, hashes: Ints, offsets: Ints, data: Bytes, first: int, end: int) -> int:
    """:func:`place_reference`, in one compiled pass when numba is installed."""
    if _place_kernel is None:
        return place_reference(slots, hashes, offsets, data, first, end)
    return int(_place_kernel(slots, hashes, offsets, data, first, end))


def gather(data: Bytes, offsets: Ints, ids: Ints) -> tuple[Bytes, Ints]:
    """:func:`gather_reference`, in one compiled pass (no per-byte temporaries) when
    numba is installed."""
    if _gather_kernel is None:
        return gather_reference(data, offsets, ids)
    packed, bounds = _gather_kernel(data, offsets, ids)
    return packed, bounds


def warm_up() -> float:
    """Compile (or load from the disk cache) both kernels on tiny inputs; return seconds."""
    started = time.perf_counter()
    data = np.frombuffer(b"ab", dtype=np.uint8).copy()
    offsets = np.array([0, 1, 2], dtype=np.int64)
    slots = np.full(4, EMPTY, dtype=np.int32)
    place(slots, np.array([5, 6], dtype=np.int64), offsets, data, 0, 2)
    gather(data, offsets, np.array([1, 0], dtype=np.int64))
    return time.perf_counter() - started
