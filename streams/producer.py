"""An idempotent Kafka producer that sends a batch and returns once the broker has every record.

Idempotence (``enable_idempotence=True``, ``acks=all``) means a retried send is
never written twice and records to one partition stay in order. Given a
``transactional_id`` the producer is also transactional: one processing cycle's
output and its consumed offsets can then be committed atomically.

Back-to-back transactions: right after a commit the broker is still writing the last
transaction's markers, so the next one's first request is refused with
CONCURRENT_TRANSACTIONS (KAFKA-5477) and retried after a back-off, 20 ms in aiokafka.
That back-off alone made every transaction take 20-26 ms on an idle local broker;
retried after ``TRANSACTION_RETRY_BACKOFF_S`` (2 ms) one takes about 6 ms (400
transactions of 20 records and offsets, measured). Set once, at import, for the
process: aiokafka reads it from a module constant, not from the producer's settings.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

import aiokafka.producer.sender
from aiokafka import AIOKafkaProducer
from aiokafka.errors import InvalidProducerEpoch, KafkaError, ProducerFenced

from streams._client import ClientWrapper
from streams.errors import StreamsError
from streams.partitioning import key_partitions
from streams.records import OutboundRecord, TopicPartition
from streams.settings import KafkaSettings, client_kwargs

__all__ = ["TRANSACTION_RETRY_BACKOFF_S", "ProduceError", "Producer", "ProducerFencedError"]

_FIXED: Final[Mapping[str, Any]] = {"enable_idempotence": True, "acks": "all"}

TRANSACTION_RETRY_BACKOFF_S: Final = 0.002
"""Wait before retrying a transaction's first request while the last one's markers are
still being written (aiokafka's ``BACKOFF_OVERRIDE``, 0.02 s by default)."""
if hasattr(aiokafka.producer.sender, "BACKOFF_OVERRIDE"):
    aiokafka.producer.sender.BACKOFF_OVERRIDE = TRANSACTION_RETRY_BACKOFF_S


class ProduceError(StreamsError):
    """Some records of a batch were not acknowledged by the broker."""


class ProducerFencedError(StreamsError):
    """A newer producer with the same transactional id took over: this one can do nothing
    more and must stop (its open transaction is aborted by the broker)."""


class Producer(ClientWrapper):
    """Idempotent (optionally transactional) producer of :class:`OutboundRecord` batches.

    ``kafka`` says how to reach the cluster; ``options`` adds aiokafka producer
    tuning such as ``linger_ms`` or ``compression_type``. Idempotence and
    ``acks=all`` are always on. Use as ``async with Producer(...) as producer:``.
    """

    _role = "producer"

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        transactional_id: str | None = None,
        **options: Any,
    ) -> None:
        self._kwargs: dict[str, Any] = {**client_kwargs(kafka), **options, **_FIXED}
        if transactional_id is not None:
            self._kwargs["transactional_id"] = transactional_id
        self._transactional_id = transactional_id

    @property
    def transactional_id(self) -> str | None:
        """The transactional id, or None for a producer that is idempotent only."""
        return self._transactional_id

    async def start(self) -> None:
        """Connect (and, if transactional, fence older producers with the same id)."""
        producer = AIOKafkaProducer(**self._kwargs)
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._client = producer

    async def stop(self) -> None:
        """Deliver what is still buffered, then disconnect. Safe to call twice."""
        await super().stop()

    async def send_batch(self, records: Iterable[OutboundRecord]) -> None:
        """Send ``records`` in order and return once the broker acknowledged every one.

        Records to the same partition keep their order. Raises :class:`ProduceError`
        if any record was not written; others may have been (inside a transaction,
        abort it and none become visible).
        """
        producer = self._started()
        batch = list(records)
        pending: list[asyncio.Future[Any]] = []
        queue_error: KafkaError | None = None
        try:
            partitions = await self._partitions(batch)
            for (topic, key, value, headers), partition in zip(batch, partitions, strict=True):
                pending.append(
                    await producer.send(
                        topic, value=value, key=key, partition=partition, headers=headers
                    )
                )
        except KafkaError as exc:
            # Queueing stopped part-way (unknown topic, full buffer, no transaction).
            queue_error = exc
        failures: list[BaseException] = []
        for future in pending:  # in turn: a batch's records are done once its first is
            if not future.done():
                await asyncio.wait((future,))  # without raising its error: gathered below
            if future.cancelled():
                failures.append(asyncio.CancelledError("the record's send was cancelled"))
            elif (error := future.exception()) is not None:
                failures.append(error)
        if queue_error is not None:
            failures.append(queue_error)
        fenced = [f for f in failures if isinstance(f, ProducerFenced | InvalidProducerEpoch)]
        if fenced:
            raise ProducerFencedError(
                f"transactional id {self._transactional_id!r} was taken over by a newer "
                "producer; this one must stop"
            ) from fenced[0]
        if failures:
            first = failures[0]
            rejected = len(failures) - (queue_error is not None)
            unwritten = rejected + len(batch) - len(pending)
            raise ProduceError(
                f"{unwritten} of {len(batch)} records were not written "
                f"({type(first).__name__}: {first}); check that the broker is reachable "
                "and the topics exist"
            ) from first

    async def _partitions(self, batch: list[OutboundRecord]) -> list[int | None]:
        """Each keyed record's partition as Kafka's default partitioner picks it, every key
        of a topic hashed at once (``streams.partitioning``); None for a record without a
        key (aiokafka picks one)."""
        producer = self._started()
        out: list[int | None] = [None] * len(batch)
        by_topic: dict[str, tuple[list[int], list[bytes]]] = {}
        for at, (topic, key, _, _) in enumerate(batch):
            if key is not None:
                ats, keys = by_topic.setdefault(topic, ([], []))
                ats.append(at)
                keys.append(key)
        for topic, (ats, keys) in by_topic.items():
            count = len(await producer.partitions_for(topic))
            for at, partition in zip(ats, key_partitions(keys, count), strict=True):
                out[at] = partition
        return out

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Run the body as one Kafka transaction: commit on success, abort on error.

        Inside it, :meth:`send_batch` output and :meth:`send_offsets_to_transaction`
        offsets become visible to ``read_committed`` consumers together, or not at all.
        """
        producer = self._started()
        if self._transactional_id is None:
            raise StreamsError("transactions need a transactional_id: pass one to Producer()")
        try:
            await producer.begin_transaction()
            try:
                yield
            except BaseException as exc:
                if not isinstance(exc, ProducerFenced | InvalidProducerEpoch):
                    try:
                        await producer.abort_transaction()
                    except Exception as abort_exc:
                        exc.add_note(f"aborting the transaction failed too: {abort_exc!r}")
                raise
            await producer.commit_transaction()
        except (ProducerFenced, InvalidProducerEpoch) as exc:
            raise ProducerFencedError(
                f"transactional id {self._transactional_id!r} was taken over by a newer "
                "producer; this one must stop"
            ) from exc

    async def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, int], group_id: str
    ) -> None:
        """Commit ``group_id``'s consumed ``offsets`` (next offset per partition) with the
        current transaction, instead of through the consumer."""
        producer = self._started()
        await producer.send_offsets_to_transaction(dict(offsets), group_id)
