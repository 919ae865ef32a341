"""The two passes over the sorted index of remembered ledger ids (:mod:`monitor.book._seen`),
with their references.

The index is an array of log places (``seq``), sorted by the 128-bit digest each one
points to (first half, then second half, both unsigned); the digests are read from the
log (``digest[seq - base]``), so the index keeps 8 bytes an id and no copy of the digests.

* :func:`find`: for each wanted digest, the seq of the remembered entry (``seq >= front``)
  holding it, or -1. Entries before ``front`` are forgotten but may still be in the index
  until its next merge; an id applied again after it was forgotten has two entries with
  the same digest, and the live one is found.
* :func:`merge`: the index with more places in, sorted (both inputs sorted).

Compiled on first use, cached on disk, releasing the GIL; ``monitor.engine.warm_up``
compiles them ahead. ``tests/unit/test_book_seen_ids.py`` checks each against its
reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.compiled import compiled

__all__ = ["find", "find_reference", "merge", "merge_reference"]

Digests = NDArray[np.uint64]  # (n, 2): first and second half
Seqs = NDArray[np.int64]


def find_reference(index: Seqs, digest: Digests, base: int, front: int, wanted: Digests) -> Seqs:
    """Readable version of :func:`find`: every indexed digest gathered, a binary search on
    their first halves, and the entries sharing a wanted first half compared in full."""
    high = digest[index - base, 0]
    start = np.searchsorted(high, wanted[:, 0], side="left")
    stop = np.searchsorted(high, wanted[:, 0], side="right")
    found = np.full(wanted.shape[0], -1, dtype=np.int64)
    for k in np.flatnonzero(stop > start).tolist():
        run = index[start[k] : stop[k]]
        same = (digest[run - base, 1] == wanted[k, 1]) & (run >= front)
        if same.any():
            found[k] = int(run[same].max())
    return found


def merge_reference(index: Seqs, fresh: Seqs, digest: Digests, base: int) -> Seqs:
    """Readable version of :func:`merge`: both together, sorted again by digest."""
    every = np.concatenate([index, fresh])
    halves = digest[every - base]
    merged: Seqs = every[np.lexsort((halves[:, 1], halves[:, 0]))]
    return merged


def _find(
    index: Any, digest: Any, base: int, front: int, wanted: Any
) -> Any:  # pragma: no cover - compiled by numba; checked against the reference
    n = index.shape[0]
    found = np.full(wanted.shape[0], -1, dtype=np.int64)
    for k in range(wanted.shape[0]):
        high, low = wanted[k, 0], wanted[k, 1]
        a, b = 0, n
        while a < b:  # the first entry not below (high, low)
            m = (a + b) >> 1
            p = index[m] - base
            if digest[p, 0] < high or (digest[p, 0] == high and digest[p, 1] < low):
                a = m + 1
            else:
                b = m
        while a < n:
            seq = index[a]
            if digest[seq - base, 0] != high or digest[seq - base, 1] != low:
                break
            if seq >= front and seq > found[k]:
                found[k] = seq
            a += 1
    return found


def _merge(
    index: Any, fresh: Any, digest: Any, base: int
) -> Any:  # pragma: no cover - compiled by numba; checked against the reference
    n, f = index.shape[0], fresh.shape[0]
    out = np.empty(n + f, dtype=np.int64)
    i = j = 0
    for k in range(n + f):
        if j == f:
            take_fresh = False
        elif i == n:
            take_fresh = True
        else:
            p, q = index[i] - base, fresh[j] - base
            take_fresh = digest[q, 0] < digest[p, 0] or (
                digest[q, 0] == digest[p, 0] and digest[q, 1] < digest[p, 1]
            )
        if take_fresh:
            out[k] = fresh[j]
            j += 1
        else:
            out[k] = index[i]
            i += 1
    return out


_find_kernel: Any = compiled(_find)
_merge_kernel: Any = compiled(_merge)


def find(index: Seqs, digest: Digests, base: int, front: int, wanted: Digests) -> Seqs:
    """The seq of each of ``wanted`` ((n, 2) digests) remembered in ``index``, or -1: one
    binary search each, reading the digests from the log (:func:`find_reference`)."""
    if _find_kernel is None:
        return find_reference(index, digest, base, front, wanted)
    found: Seqs = _find_kernel(index, digest, base, front, wanted)
    return found


def merge(index: Seqs, fresh: Seqs, digest: Digests, base: int) -> Seqs:
    """``index`` and ``fresh`` (each sorted by digest) as one sorted index, in one pass
    (:func:`merge_reference`)."""
    if _merge_kernel is None:
        return merge_reference(index, fresh, digest, base)
    merged: Seqs = _merge_kernel(index, fresh, digest, base)
    return merged
