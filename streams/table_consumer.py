"""The table consumer: reads all of a (compacted) topic from the beginning, then follows it.

No consumer group: every instance needs the whole table (all prices) before it
may judge anyone, so the partitions are assigned by hand and nothing is
committed. :attr:`TableConsumer.caught_up` turns True once every partition has
been read up to the end offset it had when the consumer started; until then
older values of a key may still be arriving.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import chain
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from streams import _lean as lean
from streams._client import ClientWrapper
from streams.errors import StreamsError
from streams.lag import IsolationLevel, partition_lag
from streams.records import InboundRecord, TopicPartition
from streams.settings import KafkaSettings, client_kwargs

__all__ = ["TableConsumer", "topic_partitions"]

_UNKNOWN_TOPIC = 3  # Kafka protocol error code UNKNOWN_TOPIC_OR_PARTITION


async def topic_partitions(kafka: KafkaSettings, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic``, from the cluster's metadata.

    Raises :class:`StreamsError` if the topic does not exist.
    """
    admin = AIOKafkaAdminClient(**client_kwargs(kafka))
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    for entry in described:
        if entry["topic"] != topic:
            continue
        if entry["error_code"] == _UNKNOWN_TOPIC or not entry["partitions"]:
            break
        if entry["error_code"] != 0:
            raise StreamsError(
                f"cannot read the partitions of topic {topic!r} (Kafka error code "
                f"{entry['error_code']}); check the broker and its access rights"
            )
        return sorted(TopicPartition(topic, p["partition"]) for p in entry["partitions"])
    raise StreamsError(f"topic {topic!r} does not exist; create it first (liqmon topics create)")


class TableConsumer(ClientWrapper):
    """Reads all partitions of ``topic`` from the beginning and keeps following them.

    The partitions are those the topic has at :meth:`start`. ``kafka`` says how to
    reach the cluster; ``options`` adds aiokafka consumer tuning.
    """

    _role = "table consumer"

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        topic: str,
        isolation_level: IsolationLevel = "read_committed",
        **options: Any,
    ) -> None:
        self.topic = topic
        self.isolation_level: IsolationLevel = isolation_level
        self.kafka = kafka
        self._kwargs: dict[str, Any] = {
            **client_kwargs(kafka),
            **options,
            "group_id": None,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "isolation_level": isolation_level,
        }
        self._partitions: frozenset[TopicPartition] = frozenset()
        self._start_ends: dict[TopicPartition, int] = {}
        self._behind: set[TopicPartition] = set()

    async def start(self) -> None:
        """Assign every partition, seek to the beginning and note the end offsets to catch up to."""
        partitions = await topic_partitions(self.kafka, self.topic)
        lean.install()  # records without aiokafka's per-record dataclass (streams._lean)
        consumer = AIOKafkaConsumer(**self._kwargs)
        try:
            await consumer.start()
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            self._start_ends = dict(await consumer.end_offsets(partitions))
            self._behind = {
                tp for tp in partitions if await consumer.position(tp) < self._start_ends[tp]
            }
        except BaseException:
            await consumer.stop()
            raise
        self._client = consumer
        self._partitions = frozenset(partitions)

    async def stop(self) -> None:
        """Disconnect. Safe to call twice."""
        await super().stop()

    @property
    def partitions(self) -> frozenset[TopicPartition]:
        """The partitions being read (all of the topic's at start)."""
        return self._partitions

    @property
    def start_end_offsets(self) -> Mapping[TopicPartition, int]:
        """Each partition's end offset when the consumer started: what "caught up" means."""
        return self._start_ends

    @property
    def caught_up(self) -> bool:
        """True once every partition has been read up to its end offset at start.

        An empty partition is caught up from the start. False while not started.
        """
        return self._client is not None and not self._behind

    async def poll_batch(self, max_records: int, timeout_ms: int) -> list[InboundRecord]:
        """Up to ``max_records`` records, waiting at most ``timeout_ms`` when none are buffered.

        Records of one partition come in offset order; :attr:`caught_up` is updated.
        """
        consumer = self._started()
        by_partition = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        if self._behind:
            # The position, not the last record, decides: it also moves past
            # transaction markers and aborted records that are never handed out.
            for tp in list(self._behind):
                if await consumer.position(tp) >= self._start_ends[tp]:
                    self._behind.discard(tp)
        return list(chain.from_iterable(by_partition.values()))

    async def lag(self) -> dict[TopicPartition, int]:
        """Offsets still to read, per partition."""
        return await partition_lag(self._started(), self._partitions, self.isolation_level)
