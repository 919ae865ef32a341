"""The checkpoint: one cycle's output and the ledger offsets it consumed, committed together.

A cycle hands its events, changelog records and dead letters to the checkpoint, then
:meth:`Checkpoint.commit` writes them with the consumed ``fills`` offsets:

* **exactly once** (``service.exactly_once``, the default): in one Kafka transaction,
  the offsets added with ``send_offsets_to_transaction``. A ``read_committed`` reader
  sees a cycle's events, states and offsets together or not at all; a crash before the
  commit aborts them, and the restarted monitor judges the same input again. The
  producer's transactional id fences an older process with the same id (a zombie of a
  restarted instance with the same ``service.instance_id``).
* **at least once**: the records are sent and acknowledged, then the offsets committed
  through the consumer. A crash between the two repeats the cycle after a restart; its
  events carry the same ids (see ``monitor.engine.event_id``).

Every send goes through here, so the service has one place that talks to the producer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence

import msgspec
import structlog

from monitor.changelog import state_record
from monitor.engine import MAX_EVENT_BYTES, fit_positions
from monitor.errors import LiqmonError
from monitor.schema import MarginEvent, MarginParameters, UnitStates
from streams import (
    CommitRejectedError,
    LedgerConsumer,
    OutboundRecord,
    Producer,
    ProducerFencedError,
    TopicPartition,
)
from streams.settings import TopicSettings

__all__ = ["Checkpoint", "FencedError"]

log = structlog.get_logger("liqmon.checkpoint")


class _Rebalanced(Exception):
    """The group generation moved on before this cycle could commit."""


class FencedError(LiqmonError):
    """Another process took over this instance's transactional id: this one must stop."""


class Checkpoint:
    """Collects a cycle's output, then commits it with the offsets the cycle consumed."""

    def __init__(
        self,
        producer: Producer,
        ledger: LedgerConsumer,
        topics: TopicSettings,
        group_id: str,
        *,
        exactly_once: bool,
    ) -> None:
        self._producer = producer
        self._ledger = ledger
        self._topics = topics
        self._group_id = group_id
        self.exactly_once = exactly_once
        self._pending: list[OutboundRecord] = []
        self._encode = msgspec.json.Encoder().encode

    @property
    def pending(self) -> int:
        """Records waiting for the next commit."""
        return len(self._pending)

    def add(self, records: Iterable[OutboundRecord]) -> None:
        """Records to write with the next commit (dead letters, changelog records)."""
        self._pending.extend(records)

    def add_events(self, events: Sequence[MarginEvent], states: Sequence[UnitStates]) -> None:
        """Margin events (key = account, header ``type``), then their accounts' states."""
        topic = self._topics.margin_events
        for event in events:
            value = self._encode(event)
            if len(value) > MAX_EVENT_BYTES:
                value = self._encode(fit_positions(event, MAX_EVENT_BYTES, self._encode))
            headers = [("type", event.type.encode())]
            self._pending.append(OutboundRecord(topic, event.account.encode(), value, headers))
        self._pending.extend(state_record(self._topics.state, record) for record in states)

    def add_parameters(self, changes: Sequence[MarginParameters]) -> None:
        """Dynamic-margin parameter changes on ``margin-events`` (key
        ``parameters:<underlying>``, header ``type=margin_parameters``)."""
        topic = self._topics.margin_events
        self._pending.extend(
            OutboundRecord(
                topic,
                f"parameters:{change.underlying}".encode(),
                self._encode(change),
                [("type", b"margin_parameters")],
            )
            for change in changes
        )

    async def commit(
        self,
        offsets: Mapping[TopicPartition, int] | None = None,
        fence: Mapping[TopicPartition, int] | None = None,
    ) -> dict[TopicPartition, int] | None:
        """Write what was added and commit ``offsets`` (next offset per ledger partition)
        with it; return the offsets committed.

        With ``fence`` (the offsets last committed for the partitions this instance
        owns), a transaction first re-commits them through the consumer group, which
        checks the group generation: an instance the group has moved on from (a zombie:
        it paused past its session, or a rebalance finished while it rebuilt) learns it
        there, its transaction is aborted and None is returned, so it writes nothing for
        partitions another instance owns now. aiokafka's transactional offset commit
        carries no generation itself (KIP-447), hence this check.
        """
        records, self._pending = self._pending, []
        offsets = dict(offsets or {})
        if not records and not offsets:
            return {}
        if self.exactly_once:
            try:
                return await self._commit_transaction(records, offsets, dict(fence or {}))
            except _Rebalanced as exc:
                log.warning("cycle aborted: the group moved on", reason=str(exc.__cause__))
                return None
        if records:
            await self._producer.send_batch(records)
        if not offsets:
            return {}
        try:
            return await self._ledger.commit(offsets)
        except CommitRejectedError as exc:
            # The group rebalanced: the new owner re-reads these records and finds this
            # cycle's states and checkpoints in liqmon-state.
            log.warning("offsets not committed", reason=str(exc))
            return {}

    async def _fence(self, fence: dict[TopicPartition, int]) -> None:
        """Re-commit ``fence`` through the group: raises :class:`_Rebalanced` if the group
        has moved on from this instance."""
        if not fence:
            return
        try:
            await self._ledger.commit(fence)
        except CommitRejectedError as exc:
            raise _Rebalanced from exc  # aborts the transaction

    async def _commit_transaction(
        self,
        records: list[OutboundRecord],
        offsets: dict[TopicPartition, int],
        fence: dict[TopicPartition, int],
    ) -> dict[TopicPartition, int]:
        try:
            async with self._producer.transaction():
                # The generation check and the records' round trips overlap; both end
                # before the commit, and either failing aborts the transaction.
                outcomes = await asyncio.gather(
                    self._producer.send_batch(records), self._fence(fence), return_exceptions=True
                )
                for outcome in outcomes:
                    if isinstance(outcome, BaseException):
                        raise outcome
                if offsets:
                    await self._producer.send_offsets_to_transaction(offsets, self._group_id)
        except ProducerFencedError as exc:
            raise FencedError(
                f"transactional id {self._producer.transactional_id!r} was taken over by a "
                "newer process; this one stops (give each instance its own service.instance_id)"
            ) from exc
        return offsets
