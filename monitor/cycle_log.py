"""The record of each cycle's input boundaries in ``liqmon-state``, for ``liqmon replay``.

With ``service.record_cycles`` each cycle (and each start-up, rebuild, assignment and
revocation) writes a :class:`~monitor.schema.CycleInput` (key ``cycle:<run>``) in its own
transaction: where each batch ended per partition, the clock it judged at, and whether it
took up or started a solvency stress. ``liqmon replay`` runs the same cycles again from
them (docs/replay.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from monitor.changelog import batch_ends, cycle_record
from monitor.schema import CycleInput, CyclePhase
from streams import InboundRecord, OutboundRecord, TopicPartition

__all__ = ["CycleLog"]


class CycleLog:
    """The cycle records of one process (its ``run``), numbered in order."""

    def __init__(self, state_topic: str, *, enabled: bool) -> None:
        self._topic = state_topic
        self._enabled = enabled
        self.run = uuid.uuid4().hex[:12]  # names this process's cycle records
        self._seq = 0

    def record(
        self,
        phase: CyclePhase,
        now_ms: int,
        *,
        prices: Sequence[InboundRecord] = (),
        ledger: Sequence[InboundRecord] = (),
        owned: frozenset[TopicPartition] = frozenset(),
        resume: dict[TopicPartition, int] | None = None,
        stress_taken: bool = False,
        stress_started: bool = False,
    ) -> list[OutboundRecord]:
        """The record of one cycle's input boundaries (none when not enabled)."""
        if not self._enabled:
            return []
        cycle = CycleInput(
            run=self.run,
            seq=self._seq,
            phase=phase,
            now_ms=now_ms,
            prices=batch_ends(prices),
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
        return [cycle_record(self._topic, cycle)]
