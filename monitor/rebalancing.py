"""What a monitor instance does when the group moves ledger partitions to or from it.

The ledger consumer calls these between two polls (``monitor.clients``). Each waits,
bounded, for the cycle in hand to finish (the cycle lock), then:

* **revoked**: stop publishing for the lost partitions' accounts; a ``revoke`` record in
  the cycle log says so.
* **assigned**: keep the book when the assignment is exactly what it was built for and
  nobody moved those partitions on; otherwise rebuild it (``monitor.recovery``: the
  newest snapshots, then the ledger after them), publish what the rebuild found and move
  the group's offsets to where the changelog says the last run got.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import structlog

from monitor.allocator import release_free_memory
from monitor.checkpoint import Checkpoint
from monitor.cycle_log import CycleLog
from monitor.engine import Engine
from monitor.observe import Observer
from monitor.partitions import AccountPartitions
from monitor.recovery import Rebuilt, Recovery
from monitor.snapshots import Snapshots
from monitor.solvency_publisher import SolvencySchedule
from streams import LedgerConsumer, TopicPartition

__all__ = ["Rebalancing"]

log = structlog.get_logger("liqmon.service")

_REBALANCE_LOCK_TIMEOUT_S = 30.0


class Rebalancing:
    """The rebalance callbacks of :class:`monitor.service.Monitor` (a base class: they
    read and set the instance's state, declared here)."""

    engine: Engine
    _lock: asyncio.Lock
    _clock_ms: Callable[[], int]
    _owned: frozenset[TopicPartition]
    _positions: dict[TopicPartition, int]  # next ledger offset processed
    _partitions: AccountPartitions
    _restored: bool  # ledger partitions assigned and their state rebuilt
    _built: bool  # the book has been built for some assignment
    _observer: Observer
    _checkpoint: Checkpoint
    _cycles: CycleLog
    _solvency: SolvencySchedule
    _snapshots: Snapshots
    _ledger: LedgerConsumer
    _recovery: Recovery

    @asynccontextmanager
    async def _between_cycles(self) -> AsyncIterator[None]:
        """Hold the cycle lock: wait (bounded) for the cycle in hand to finish first.

        Only the wait is bounded; what runs inside (a rebuild replaying a long ledger)
        may take as long as it needs.
        """
        async with asyncio.timeout(_REBALANCE_LOCK_TIMEOUT_S):
            await self._lock.acquire()
        try:
            yield
        finally:
            self._lock.release()

    async def _on_revoked(self, revoked: frozenset[TopicPartition]) -> None:
        async with self._between_cycles():
            self._owned = self._owned - revoked
            self._restored = False
            # Committed with the next cycle: from here the run publishes for fewer accounts.
            now_ms = self._clock_ms()
            self._checkpoint.add(self._cycles.record("revoke", now_ms, owned=self._owned))

    async def _on_assigned(self, assigned: frozenset[TopicPartition]) -> None:
        """Rebuild the book for the new assignment unless it continues what we hold."""
        async with self._between_cycles():
            committed = await self._ledger.committed(assigned)
            # Keep the book only if the assignment is exactly what it was built for and
            # nobody else moved those partitions on; otherwise rebuild, which also drops
            # the accounts of partitions this instance lost.
            continuous = (
                self._built
                and assigned == frozenset(self._positions)
                and all(self._positions.get(tp) == offset for tp, offset in committed.items())
            )
            if not continuous:
                await self._adopt(await self._recovery.rebuild(assigned, committed), assigned)
                # The rebuilt book holds millions of long-lived objects (ids, names);
                # move them out of the collector's sight so full collections do not
                # pause every cycle behind them.
                gc.freeze()
            else:  # the same partitions back: no rebuild, publishing for them again
                now_ms = self._clock_ms()
                self._checkpoint.add(self._cycles.record("assign", now_ms, owned=assigned))
            self._owned = assigned
            self._restored = True
            log.info("ready", accounts=self.engine.account_count, partitions=len(assigned))

    async def _adopt(self, rebuilt: Rebuilt, assigned: frozenset[TopicPartition]) -> None:
        """Judge with the rebuilt book from now on; publish what it found, and move the
        group's offsets to where the changelog says the last run got."""
        self.engine = rebuilt.engine
        release_free_memory()  # the restore's freed temporaries: see monitor.allocator
        await self._solvency.prepare(rebuilt.engine)
        self._partitions = rebuilt.partitions
        self._observer.rebuilt(rebuilt.engine)
        self._owned = assigned
        self._checkpoint.add_events(rebuilt.events, rebuilt.states)
        self._checkpoint.add(
            self._cycles.record("rebuild", rebuilt.now_ms, owned=assigned, resume=rebuilt.resume)
        )
        if rebuilt.ahead:
            self._ledger.seek(rebuilt.ahead)
        await self._checkpoint.commit(rebuilt.ahead)
        self._observer.published(rebuilt.events, self._clock_ms())
        self._positions = dict(rebuilt.resume)
        self._built = True
        self._snapshots.schedule(assigned, rebuilt.snapshot_keys)
