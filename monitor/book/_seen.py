"""Ledger ids already applied, remembered for a window of ledger time.

Fills, transfers and the other ledger events are idempotent by id. Remembering every
id forever grows without bound on a venue that trades all day, so an id is forgotten
once the ledger clock has moved more than the window past the moment it was applied.
The ledger clock is the newest event time seen; an id is stamped with the clock when it
is applied (not with its own event time), so a late event is remembered for a whole
window too, and eviction walks the ids in the order they were applied.

No single event can move the clock far: the service rejects ledger events stamped more
than ``service.max_clock_skew_s`` after their Kafka record time (``ts_out_of_range``),
and Kafka 4 brokers refuse record times more than an hour ahead of their own clock
(``log.message.timestamp.after.max.ms``). Memory is bounded whatever the input: beyond
``max_ids`` remembered ids the oldest are forgotten first. A duplicate resent later than
that is applied again; upstream resends come within minutes, and the default window is
a day (``engine.idempotency_window_s``). Eviction depends on the events and their order
only, so it is deterministic.

How they are kept: a million accounts' ledger fills millions of ids, so each is kept as
a 128-bit digest of its kind and id (BLAKE2b; two different ids share one with a
probability of about n^2 / 2^129, 1e-26 for ten million ids), in arrays: a log in the
order applied (digest, stamp, owner: 28 bytes an id) and an index of their places in the
log sorted by digest (8 bytes an id; the binary search reads the digests from the log:
``monitor.book._seen_kernels``). Forgetting the oldest ids moves the log's front; the
index drops them at its next merge. Ids added since the last merge wait in a small dict
and lists (up to 4,096 or a thirty-second of the ids, whichever is more; about 180 bytes
each), so adding one costs a digest and a few appends, and a lookup one dict probe and a
binary search. About 40 bytes an id (the log grows by a quarter when full), against about
250 for Python tuples in a dict; snapshots carry the digests (16 bytes an id), not the
ids.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left

import numpy as np
from numpy.typing import NDArray

from monitor.book import _seen_kernels

__all__ = ["DIGEST_BYTES", "SeenIds", "digest_of", "digests_of"]

LedgerKey = tuple[str, str]
DIGEST_BYTES = 16
_MIN_CAPACITY = 1024
_MIN_MERGE = 4096  # ids added since the last merge before the index takes them in


def digest_of(key: LedgerKey) -> bytes:
    """The 16-byte digest a ledger key (kind, id) is remembered by."""
    return hashlib.blake2b(f"{key[0]}\x00{key[1]}".encode(), digest_size=DIGEST_BYTES).digest()


def digests_of(keys: list[LedgerKey]) -> NDArray[np.uint64]:
    """The digests of ``keys`` as an (n, 2) array of little-endian uint64 halves."""
    joined = b"".join(digest_of(key) for key in keys)
    return np.frombuffer(joined, dtype="<u8").reshape(-1, 2).astype(np.uint64)


class SeenIds:
    """A set of ledger keys that forgets keys applied more than ``window_ms`` ago.

    Each key remembers the account it was applied to (``owner``, a dense account id), so
    a snapshot of some accounts can carry their ids (:meth:`log`).
    """

    def __init__(self, window_ms: int | None = None, max_ids: int | None = None) -> None:
        self._window_ms = window_ms
        self._max_ids = max_ids
        self._clock = 0
        # The log, in the order applied. Entry ``seq`` sits at ``seq - _base`` of the
        # arrays while ``seq < _flushed``, at ``seq - _flushed`` of the pending lists after.
        self._digest = np.empty((_MIN_CAPACITY, 2), dtype=np.uint64)
        self._stamp = np.empty(_MIN_CAPACITY, dtype=np.int64)
        self._owner = np.empty(_MIN_CAPACITY, dtype=np.int32)
        self._base = 0  # seq of the arrays' first slot
        self._flushed = 0  # seq of the first pending entry
        self._pending_digest: list[bytes] = []
        self._pending_stamp: list[int] = []
        self._pending_owner: list[int] = []
        self._front = 0  # first seq still remembered
        self._next = 0  # seq of the next id applied
        self._oldest = 0  # stamp of entry ``_front`` (when there is one)
        # The index: seqs sorted by their digests (entries before _front are stale, none
        # before _base); ids added since the last merge are in ``_recent`` (digest -> seq).
        self._index: NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self._recent: dict[bytes, int] = {}

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple):
            return False
        return self._find(digest_of(key)) >= 0

    def __len__(self) -> int:
        return self._next - self._front

    @property
    def added(self) -> int:
        """How many keys were ever added (remembered or forgotten since): it moves with
        every ledger event booked."""
        return self._next

    @property
    def clock_ms(self) -> int:
        """The ledger clock: the newest event time seen."""
        return self._clock

    def add(self, key: LedgerKey, ts: int, owner: int = -1) -> None:
        """Remember ``key`` (an event of time ``ts`` of account ``owner``); forget what
        fell out of the window."""
        self.add_digest(digest_of(key), ts, owner)

    def look_up(self, digests: list[bytes]) -> list[int]:
        """Where each of ``digests`` sits in the sorted index now (its seq, or -1), in one
        vectorised search: for a batch read with :meth:`has_looked_up` and added with
        ``add_digest(..., merge=False)`` until :meth:`settle` (a merge in between would
        move the batch's own ids out of the dict the answers rely on)."""
        if not digests or not self._index.size:
            return [-1] * len(digests)
        wanted = np.frombuffer(b"".join(digests), dtype="<u8").reshape(-1, 2).astype(np.uint64)
        found = _seen_kernels.find(self._index, self._digest, self._base, self._front, wanted)
        result: list[int] = found.tolist()
        return result

    def has_looked_up(self, digest: bytes, indexed: int) -> bool:
        """Whether the key of ``digest`` is remembered, given what :meth:`look_up`
        found for it."""
        seq = self._recent.get(digest)
        if seq is not None:
            return seq >= self._front
        return indexed >= self._front

    def settle(self) -> None:
        """Merge if the ids added since the last merge are due (after a batch)."""
        if len(self._recent) >= max(_MIN_MERGE, len(self) // 32):
            self._merge()

    def add_digest(self, digest: bytes, ts: int, owner: int = -1, *, merge: bool = True) -> None:
        """:meth:`add` for a key given by its :func:`digest_of` (a caller that looked
        it up first digests once)."""
        if ts > self._clock:
            self._clock = ts
        if self._next == self._front:
            self._oldest = self._clock
        self._recent[digest] = self._next
        self._pending_digest.append(digest)
        self._pending_stamp.append(self._clock)
        self._pending_owner.append(owner)
        self._next += 1
        if self._window_ms is not None or self._max_ids is not None:
            self._forget()
        if merge:
            self.settle()

    def log(self) -> tuple[NDArray[np.uint64], NDArray[np.int64], NDArray[np.int32]]:
        """``(digests (n, 2), stamps, owners)`` of every remembered key, oldest first:
        views of the log, valid until the next key is added."""
        self._flush()
        live = slice(self._front - self._base, self._next - self._base)
        return self._digest[live], self._stamp[live], self._owner[live]

    def restore(
        self,
        digests: NDArray[np.uint64],
        stamps: NDArray[np.int64],
        owners: NDArray[np.int64],
        clock_ms: int,
    ) -> None:
        """Remember entries of :meth:`log` (owners renumbered) as they were,
        with what is remembered already: the newest inside the window and the cap."""
        self._merge()
        if clock_ms > self._clock:
            self._clock = clock_ms
        live = slice(self._front - self._base, self._next - self._base)
        digest = np.concatenate([self._digest[live], digests.reshape(-1, 2)])
        stamp = np.concatenate([self._stamp[live], stamps.astype(np.int64)])
        owner = np.concatenate([self._owner[live].astype(np.int64), owners.astype(np.int64)])
        # Oldest first (stable: ties keep their order); a key met twice counts once, at
        # its newest place.
        order = np.argsort(stamp, kind="stable")
        digest, stamp, owner = digest[order], stamp[order], owner[order]
        if digest.shape[0]:
            whole = np.ascontiguousarray(digest[::-1]).view(np.dtype((np.void, DIGEST_BYTES)))
            _, first_from_end = np.unique(whole.ravel(), return_index=True)
            keep = np.sort(digest.shape[0] - 1 - first_from_end)
            digest, stamp, owner = digest[keep], stamp[keep], owner[keep]
        n = digest.shape[0]
        self._digest, self._stamp, self._owner = _log_arrays(_capacity_for(n))
        self._digest[:n], self._stamp[:n], self._owner[:n] = digest, stamp, owner
        self._base, self._front, self._next, self._flushed = 0, 0, n, n
        self._oldest = int(stamp[0]) if n else 0
        self._forget()
        seq = np.arange(self._front, self._next, dtype=np.int64)
        halves = self._digest[seq]
        self._index = seq[np.lexsort((halves[:, 1], halves[:, 0]))]

    # ------------------------------------------------------------------ the log

    def _stamp_of(self, seq: int) -> int:
        if seq >= self._flushed:
            return self._pending_stamp[seq - self._flushed]
        return int(self._stamp[seq - self._base])

    def _forget(self) -> None:
        """Move the front past the ids out of the window or over the cap."""
        front = self._front
        if front == self._next:
            return
        if self._window_ms is not None and self._oldest < self._clock - self._window_ms:
            # Stamps never decrease along the log (the clock only moves on).
            horizon = self._clock - self._window_ms
            if front < self._flushed:
                stamps = self._stamp[front - self._base : self._flushed - self._base]
                front += int(np.searchsorted(stamps, horizon, side="left"))
            if front >= self._flushed:
                lo = front - self._flushed
                front = self._flushed + bisect_left(self._pending_stamp, horizon, lo=lo)
        if self._max_ids is not None:
            front = max(front, self._next - self._max_ids)
        if front != self._front:
            self._front = front
            if front < self._next:
                self._oldest = self._stamp_of(front)

    def _flush(self) -> None:
        """Move the pending entries into the arrays (dropping the forgotten prefix first,
        and growing them if needed)."""
        added = len(self._pending_stamp)
        if not added:
            return
        flushed_live = max(0, self._flushed - self._front)
        end = self._flushed - self._base + added
        if end > self._stamp.size:
            kept = slice(self._flushed - flushed_live - self._base, self._flushed - self._base)
            n = flushed_live + added
            digest, stamp, owner = _log_arrays(_capacity_for(n))
            digest[:flushed_live] = self._digest[kept]
            stamp[:flushed_live] = self._stamp[kept]
            owner[:flushed_live] = self._owner[kept]
            self._digest, self._stamp, self._owner = digest, stamp, owner
            self._base = self._flushed - flushed_live
            # The index must not point before the log's first slot (those are forgotten).
            self._index = self._index[self._index >= self._base]
        at = self._flushed - self._base
        self._digest[at : at + added] = np.frombuffer(
            b"".join(self._pending_digest), dtype="<u8"
        ).reshape(-1, 2)
        self._stamp[at : at + added] = self._pending_stamp
        self._owner[at : at + added] = self._pending_owner
        self._flushed += added
        self._pending_digest, self._pending_stamp, self._pending_owner = [], [], []

    # ------------------------------------------------------------------ the index

    def _find(self, digest: bytes) -> int:
        """The seq of ``digest`` if remembered, else -1."""
        seq = self._recent.get(digest)
        if seq is not None:  # the newest place of this digest
            return seq if seq >= self._front else -1
        return self._find_indexed(digest)

    def _find_indexed(self, digest: bytes) -> int:
        """The seq of ``digest`` in the sorted index if remembered, else -1."""
        wanted = np.frombuffer(digest, dtype="<u8").reshape(1, 2).astype(np.uint64)
        found = _seen_kernels.find(self._index, self._digest, self._base, self._front, wanted)
        return int(found[0])

    def _merge(self) -> None:
        """Flush the log; take the recent ids into the sorted index and drop the
        forgotten ones from it."""
        self._flush()
        index = self._index
        stale = bool(index.size) and bool((index < self._front).any())
        if not self._recent and not stale:
            return
        if stale:
            index = index[index >= self._front]
        fresh = np.fromiter(self._recent.values(), dtype=np.int64, count=len(self._recent))
        self._recent = {}
        fresh = fresh[fresh >= self._front]
        halves = self._digest[fresh - self._base]
        fresh = fresh[np.lexsort((halves[:, 1], halves[:, 0]))]
        self._index = _seen_kernels.merge(index, fresh, self._digest, self._base)


def _log_arrays(
    capacity: int,
) -> tuple[NDArray[np.uint64], NDArray[np.int64], NDArray[np.int32]]:
    return (
        np.empty((capacity, 2), dtype=np.uint64),
        np.empty(capacity, dtype=np.int64),
        np.empty(capacity, dtype=np.int32),
    )


def _capacity_for(n: int) -> int:
    """Slots for a log of ``n`` entries and room to grow by a quarter (the unwritten room
    is not resident; a smaller step copies the log more often)."""
    return max(_MIN_CAPACITY, n + n // 4 + 1)
