"""The ledger consumer: a consumer-group member that reads a keyed topic in batches and
commits exactly what was processed.

Kafka splits the topic's partitions between the group's members; every record of
one key (account) lives in one partition, so each member owns whole accounts.
When partitions move, the ``on_revoked``/``on_assigned`` callbacks run (awaited,
inside the rebalance) so the owner of the state can commit and rebuild (heartbeats go
on meanwhile, so a rebuild may take longer than the session timeout); to
rebuild, :func:`read_history` replays a partition up to its committed offset
without touching the group.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from itertools import chain
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError

from streams import _lean as lean
from streams._client import ClientWrapper
from streams.errors import StreamsError
from streams.lag import IsolationLevel, partition_lag
from streams.records import InboundRecord, TopicPartition
from streams.settings import KafkaSettings, client_kwargs

__all__ = [
    "CommitRejectedError",
    "HistoryGap",
    "LedgerConsumer",
    "RebalanceCallback",
    "read_history",
]

RebalanceCallback = Callable[[frozenset[TopicPartition]], Awaitable[None]]
"""Called with a set of partitions during a rebalance; awaited before the rebalance goes on."""


class HistoryGap(StreamsError):
    """Records a replay needs were deleted from the partition (retention)."""


class CommitRejectedError(StreamsError):
    """The group rebalanced before the commit: the partitions' new owner will read them again."""


class _RebalanceRelay(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """Forwards aiokafka's rebalance events and keeps the first callback failure.

    aiokafka logs and swallows listener exceptions; keeping the failure lets
    :meth:`LedgerConsumer.poll_batch` raise it, so a failed state rebuild stops
    the service instead of leaving it running on half-built state.
    """

    def __init__(
        self, on_assigned: RebalanceCallback | None, on_revoked: RebalanceCallback | None
    ) -> None:
        self.on_assigned = on_assigned
        self.on_revoked = on_revoked
        self.failure: Exception | None = None
        self.consumer: Any = None  # set before the consumer joins

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if self.on_revoked is not None and self.failure is None:
            try:
                await self.on_revoked(frozenset(revoked))
            except Exception as exc:
                self.failure = exc

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if self.on_assigned is not None and self.failure is None:
            # aiokafka stops heartbeating for the whole rebalance, callback included: a
            # rebuild longer than the session timeout would lose the membership, and the
            # next rebalance would rebuild again, forever. Beat while the callback runs.
            beating = asyncio.ensure_future(_heartbeat(self.consumer))
            try:
                await self.on_assigned(frozenset(assigned))
            except Exception as exc:
                self.failure = exc
            finally:
                beating.cancel()
                await asyncio.gather(beating, return_exceptions=True)


async def _heartbeat(consumer: Any) -> None:
    """Send the group heartbeats of ``consumer`` at its heartbeat interval until cancelled
    (through aiokafka's coordinator, which has no public call for it; nothing happens if
    a future aiokafka lacks it)."""
    coordinator = getattr(consumer, "_coordinator", None)
    beat = getattr(coordinator, "_do_heartbeat", None)
    interval_ms = getattr(coordinator, "_heartbeat_interval_ms", None)
    if beat is None or not interval_ms:
        return
    while True:
        await asyncio.sleep(interval_ms / 1000)
        await beat()  # logs and absorbs what the broker answers (a rebalance: rejoin after)


class LedgerConsumer(ClientWrapper):
    """Batch consumer of ``topic`` in consumer group ``group_id``, committing by hand.

    Auto-commit is off and a partition without a committed offset is read from
    the earliest record. ``on_revoked`` gets every partition being given up
    (commit what was processed there before returning); ``on_assigned`` gets the
    whole new assignment (aiokafka rebalances eagerly: everything is revoked, then
    everything assigned, possibly including partitions held before). The first
    assignment happens inside :meth:`start`. ``kafka`` says how to reach the
    cluster; ``options`` adds aiokafka consumer tuning (``session_timeout_ms``,
    ``max_poll_interval_ms``, ``group_instance_id``, ...).
    """

    _role = "ledger consumer"

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        topic: str,
        group_id: str,
        on_assigned: RebalanceCallback | None = None,
        on_revoked: RebalanceCallback | None = None,
        isolation_level: IsolationLevel = "read_committed",
        **options: Any,
    ) -> None:
        self.topic = topic
        self.group_id = group_id
        self.isolation_level: IsolationLevel = isolation_level
        self.kafka = kafka
        self._kwargs: dict[str, Any] = {
            **client_kwargs(kafka),
            **options,
            "group_id": group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "isolation_level": isolation_level,
        }
        self._relay = _RebalanceRelay(on_assigned, on_revoked)

    async def start(self) -> None:
        """Join the group and wait for the first assignment (``on_assigned`` runs first)."""
        self._relay.failure = None
        lean.install()  # records without aiokafka's per-record dataclass (streams._lean)
        consumer = AIOKafkaConsumer(**self._kwargs)
        consumer.subscribe([self.topic], listener=self._relay)
        self._relay.consumer = consumer
        # Set before joining: the first on_assigned runs inside consumer.start() and may
        # call committed(), seek() or commit() on this object.
        self._client = consumer
        try:
            await consumer.start()
            self._raise_callback_failure()
        except BaseException:
            self._client = None
            await consumer.stop()
            raise

    async def stop(self) -> None:
        """Leave the group without committing (commit first what should be kept). Safe twice."""
        await super().stop()

    def _raise_callback_failure(self) -> None:
        failure = self._relay.failure
        if failure is not None:
            raise failure

    def assignment(self) -> frozenset[TopicPartition]:
        """The partitions this member holds now (empty while a rebalance is under way)."""
        return frozenset(self._started().assignment())

    async def poll_batch(self, max_records: int, timeout_ms: int) -> list[InboundRecord]:
        """Up to ``max_records`` records, waiting at most ``timeout_ms`` when none are buffered.

        Records of one partition come in offset order. Raises what a rebalance
        callback raised.
        """
        consumer = self._started()
        self._raise_callback_failure()
        by_partition = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        self._raise_callback_failure()
        return list(chain.from_iterable(by_partition.values()))

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Commit ``offsets`` (the next offset to read, per partition; see ``next_offsets``).

        Partitions no longer assigned are left out (their new owner decides); the
        offsets actually committed are returned. Raises :class:`CommitRejectedError` if the
        group rebalanced meanwhile.
        """
        consumer = self._started()
        self._raise_callback_failure()
        assigned = consumer.assignment()
        owned = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        if owned:
            try:
                await consumer.commit(owned)
            except CommitFailedError as exc:
                raise CommitRejectedError(
                    f"offsets of group {self.group_id!r} were not committed because the group "
                    "rebalanced; the partitions will be read again by their new owner"
                ) from exc
        return owned

    def seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Read each assigned partition from ``offsets[tp]`` on (e.g. where restored state ends)."""
        consumer = self._started()
        for tp, offset in offsets.items():
            consumer.seek(tp, offset)

    async def committed(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The group's committed offset of each partition; 0 where nothing was committed yet."""
        consumer = self._started()
        offsets: dict[TopicPartition, int] = {}
        for tp in partitions:
            offset = await consumer.committed(tp)
            offsets[tp] = 0 if offset is None else offset
        return offsets

    async def lag(self) -> dict[TopicPartition, int]:
        """Offsets still to read, per assigned partition."""
        consumer = self._started()
        return await partition_lag(consumer, consumer.assignment(), self.isolation_level)

    def read_history(
        self, until: Mapping[TopicPartition, int], *, max_records: int = 10_000
    ) -> AsyncGenerator[list[InboundRecord], None]:
        """:func:`read_history` with this consumer's settings and isolation level."""
        return read_history(
            self.kafka,
            until,
            isolation_level=self.isolation_level,
            max_records=max_records,
        )


async def read_history(
    kafka: KafkaSettings,
    until: Mapping[TopicPartition, int],
    *,
    start: Mapping[TopicPartition, int] | None = None,
    isolation_level: IsolationLevel = "read_committed",
    max_records: int = 10_000,
    timeout_ms: int = 500,
    **options: Any,
) -> AsyncGenerator[list[InboundRecord], None]:
    """Yield batches of each partition's records from ``start[tp]`` up to ``until[tp]``
    (excluded); without ``start``, from wherever each partition begins now.

    With ``start``, raises :class:`HistoryGap` when records from ``start[tp]`` (0 for a
    partition it does not name) on were deleted already (retention): the history cannot
    be replayed whole.

    A separate consumer outside any group does the reading, so no offset is
    committed and the group is not disturbed: use it to rebuild the state of newly
    assigned partitions up to their committed offset (see
    :meth:`LedgerConsumer.committed`). A bound beyond the partition's end is
    capped at the end. Iterate to the end, or close the iterator
    (``contextlib.aclosing``) to release the consumer.
    """
    first = dict(start or {})
    bounds = {tp: offset for tp, offset in until.items() if offset > first.get(tp, 0)}
    if not bounds:
        return
    lean.install()
    consumer = AIOKafkaConsumer(
        **{
            **client_kwargs(kafka),
            **options,
            "group_id": None,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "isolation_level": isolation_level,
        }
    )
    await consumer.start()
    try:
        partitions = list(bounds)
        consumer.assign(partitions)
        if start is None:
            await consumer.seek_to_beginning(*partitions)
        else:
            beginnings = await consumer.beginning_offsets(partitions)
            for tp in partitions:
                if beginnings[tp] > first.get(tp, 0):
                    raise HistoryGap(
                        f"records {first.get(tp, 0)} to {beginnings[tp] - 1} of "
                        f"{tp.topic}[{tp.partition}] were deleted (retention) and are needed "
                        "to rebuild its state"
                    )
                consumer.seek(tp, first.get(tp, 0))
        ends = await consumer.end_offsets(partitions)
        bounds = {tp: min(offset, ends[tp]) for tp, offset in bounds.items()}
        remaining = {tp for tp in partitions if await consumer.position(tp) < bounds[tp]}
        while remaining:
            by_partition = await consumer.getmany(
                *remaining, timeout_ms=timeout_ms, max_records=max_records
            )
            batch: list[InboundRecord] = []
            for tp, records in by_partition.items():
                bound = bounds[tp]
                if records and records[-1].offset < bound:
                    batch.extend(records)
                else:
                    batch.extend(record for record in records if record.offset < bound)
            for tp in list(remaining):
                if await consumer.position(tp) >= bounds[tp]:
                    remaining.discard(tp)
                    consumer.pause(tp)
            if batch:
                yield batch
    finally:
        await consumer.stop()
