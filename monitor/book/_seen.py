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
"""

from __future__ import annotations

from collections import deque

__all__ = ["SeenIds"]

LedgerKey = tuple[str, str]


class SeenIds:
    """A set of ledger keys that forgets keys applied more than ``window_ms`` ago.

    Each key remembers the account it was applied to (``owner``, a dense account id), so
    a snapshot of some accounts can carry their ids (:meth:`owned_by`).
    """

    def __init__(self, window_ms: int | None = None, max_ids: int | None = None) -> None:
        self._window_ms = window_ms
        self._max_ids = max_ids
        self._seen: dict[LedgerKey, tuple[int, int]] = {}  # key -> (stamp, owner)
        self._arrivals: deque[tuple[int, LedgerKey]] = deque()
        self._clock = 0

    def __contains__(self, key: object) -> bool:
        return key in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    @property
    def clock_ms(self) -> int:
        """The ledger clock: the newest event time seen."""
        return self._clock

    def add(self, key: LedgerKey, ts: int, owner: int = -1) -> None:
        """Remember ``key`` (an event of time ``ts`` of account ``owner``); forget what
        fell out of the window."""
        if ts > self._clock:
            self._clock = ts
        self._remember(key, self._clock, owner)

    def _remember(self, key: LedgerKey, stamp: int, owner: int) -> None:
        if self._window_ms is None and self._max_ids is None:
            self._seen[key] = (stamp, owner)
            return
        self._seen[key] = (stamp, owner)
        arrivals, seen = self._arrivals, self._seen
        arrivals.append((stamp, key))
        horizon = self._clock - self._window_ms if self._window_ms is not None else -1
        cap = self._max_ids if self._max_ids is not None else len(arrivals)
        while arrivals and (arrivals[0][0] < horizon or len(seen) > cap):
            old_stamp, old_key = arrivals.popleft()
            kept = seen.get(old_key)
            if kept is not None and kept[0] == old_stamp:
                del seen[old_key]

    def owned_by(self, owners: set[int]) -> list[tuple[str, str, int, int]]:
        """``(kind, id, stamp, owner)`` of the remembered keys of ``owners``, oldest first."""
        return [
            (key[0], key[1], stamp, owner)
            for key, (stamp, owner) in self._seen.items()
            if owner in owners
        ]

    def restore(self, entries: list[tuple[str, str, int, int]], clock_ms: int) -> None:
        """Remember ``entries`` (from :meth:`owned_by`, owners renumbered) as they were."""
        if clock_ms > self._clock:
            self._clock = clock_ms
        # In bulk: the clock does not move during a restore, so remembering every entry
        # oldest first and then forgetting from the oldest end once keeps exactly what
        # remembering them one by one would (a million accounts' ids: seconds, not a minute).
        ordered = sorted(entries, key=lambda entry: entry[2])
        seen = self._seen
        seen.update(((kind, item_id), (stamp, owner)) for kind, item_id, stamp, owner in ordered)
        if self._window_ms is None and self._max_ids is None:
            return
        arrivals = self._arrivals
        arrivals.extend((stamp, (kind, item_id)) for kind, item_id, stamp, _ in ordered)
        horizon = self._clock - self._window_ms if self._window_ms is not None else -1
        cap = self._max_ids if self._max_ids is not None else len(arrivals)
        while arrivals and (arrivals[0][0] < horizon or len(seen) > cap):
            old_stamp, old_key = arrivals.popleft()
            kept = seen.get(old_key)
            if kept is not None and kept[0] == old_stamp:
                del seen[old_key]
