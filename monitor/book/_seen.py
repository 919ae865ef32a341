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
    """A set of ledger keys that forgets keys applied more than ``window_ms`` ago."""

    def __init__(self, window_ms: int | None = None, max_ids: int | None = None) -> None:
        self._window_ms = window_ms
        self._max_ids = max_ids
        self._seen: dict[LedgerKey, int] = {}
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

    def add(self, key: LedgerKey, ts: int) -> None:
        """Remember ``key`` (an event of time ``ts``); forget what fell out of the window."""
        if ts > self._clock:
            self._clock = ts
        if self._window_ms is None and self._max_ids is None:
            self._seen[key] = ts
            return
        stamp = self._clock
        self._seen[key] = stamp
        arrivals, seen = self._arrivals, self._seen
        arrivals.append((stamp, key))
        horizon = stamp - self._window_ms if self._window_ms is not None else -1
        cap = self._max_ids if self._max_ids is not None else len(arrivals)
        while arrivals and (arrivals[0][0] < horizon or len(seen) > cap):
            old_stamp, old_key = arrivals.popleft()
            if seen.get(old_key) == old_stamp:
                del seen[old_key]
