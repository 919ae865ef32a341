"""The record of each cycle's input boundaries in ``liqmon-state``, for ``liqmon replay``.

With ``service.record_cycles`` each cycle (and each start-up, rebuild, assignment and
revocation) writes a :class:`~monitor.schema.CycleInput` (key ``cycle:<run>``): where each
batch ended per partition, the clock it judged at, and whether it took up or started a
solvency stress. ``liqmon replay`` runs the same cycles again from them (docs/replay.md).

A cycle that writes nothing else (ticks that moved no state: most cycles) holds its
record back (:meth:`CycleLog.hold`) rather than pay a transaction for it alone; the next
cycle that writes anything writes the held records first, in order, in its transaction,
and so does a cycle :data:`HOLD_S` after the oldest held one. Every record of a cycle
before an event is then committed with that event or earlier. A crash loses at most the
held records of the cycles since the last write, which published nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Final

from monitor.changelog import batch_ends, cycle_record
from monitor.schema import CycleInput, CyclePhase
from streams import InboundRecord, OutboundRecord, TopicPartition

__all__ = ["HOLD_S", "CycleLog"]

HOLD_S: Final = 1.0  # the longest a cycle record waits for a transaction to go in


class CycleLog:
    """The cycle records of one process (its ``run``), numbered in order."""

    def __init__(self, state_topic: str, *, enabled: bool) -> None:
        self._topic = state_topic
        self._enabled = enabled
        self.run = uuid.uuid4().hex[:12]  # names this process's cycle records
        self._seq = 0
        self._held: list[OutboundRecord] = []
        self._held_since = 0.0  # time.monotonic() of the oldest held record

    def record(
        self,
        phase: CyclePhase,
        now_ms: int,
        *,
        price_ends: tuple[tuple[int, int], ...] = (),
        ledger: Sequence[InboundRecord] = (),
        owned: frozenset[TopicPartition] = frozenset(),
        resume: dict[TopicPartition, int] | None = None,
        stress_taken: bool = False,
        stress_started: bool = False,
    ) -> list[OutboundRecord]:
        """The records held back (:meth:`hold`), then the record of this cycle's input
        boundaries (none when not enabled). ``price_ends`` are the price records' ends
        (``batch_ends``): the records themselves are let go once decoded."""
        if not self._enabled:
            return []
        cycle = CycleInput(
            run=self.run,
            seq=self._seq,
            phase=phase,
            now_ms=now_ms,
            prices=price_ends,
            ledger=(
                tuple((tp.partition, o) for tp, o in sorted(resume.items()))
                if resume is not None
                else batch_ends(ledger)
            ),
            owned=tuple(sorted(tp.partition for tp in owned)),
            stress_taken=stress_taken,
            stress_started=stress_started,
        )
        self._seq += 1
        records, self._held = [*self._held, cycle_record(self._topic, cycle)], []
        return records

    def hold(self, records: list[OutboundRecord], *, alone: bool) -> list[OutboundRecord]:
        """What to write now of ``records`` (the last :meth:`record`): none when they are
        all this cycle would write (``alone``) and the oldest has waited less than
        :data:`HOLD_S`; they are then held, to go first into the next write."""
        now = time.monotonic()
        if not alone or not records:
            return records
        if len(records) == 1:  # nothing was held
            self._held_since = now
        elif now - self._held_since >= HOLD_S:
            return records
        self._held = records
        return []

    def flush(self) -> list[OutboundRecord]:
        """The held records, to write now (a graceful stop)."""
        records, self._held = self._held, []
        return records
