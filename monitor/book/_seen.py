"""Ledger ids already applied, remembered for a window of event time.

Fills, transfers and the other ledger events are idempotent by id. Remembering every
id forever grows without bound on a venue that trades all day, so an id is forgotten
once the newest ledger event time seen is more than the window past its own event
time. A duplicate that arrives later than that is applied again; upstream resends
come within minutes, and the default window is a day (``engine.idempotency_window_s``).
Eviction follows arrival order and event times only, so it is deterministic.
"""

from __future__ import annotations

from collections import deque

__all__ = ["SeenIds"]

LedgerKey = tuple[str, str]


class SeenIds:
    """A set of ledger keys that forgets keys older than ``window_ms`` of event time."""

    def __init__(self, window_ms: int | None = None) -> None:
        self._window_ms = window_ms
        self._seen: dict[LedgerKey, int] = {}
        self._arrivals: deque[tuple[int, LedgerKey]] = deque()
        self._newest_ts = 0

    def __contains__(self, key: object) -> bool:
        return key in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, key: LedgerKey, ts: int) -> None:
        """Remember ``key`` (applied at event time ``ts``); forget what fell out of the window."""
        self._seen[key] = ts
        if self._window_ms is None:
            return
        self._arrivals.append((ts, key))
        if ts > self._newest_ts:
            self._newest_ts = ts
        horizon = self._newest_ts - self._window_ms
        arrivals, seen = self._arrivals, self._seen
        while arrivals and arrivals[0][0] < horizon:
            old_ts, old_key = arrivals.popleft()
            if seen.get(old_key) == old_ts:
                del seen[old_key]
