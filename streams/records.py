"""The shapes of Kafka records going in and out of liqmon, independent of any message type.

liqmon's consumers hand out the records aiokafka fetched as they are (no copy per
message): ``LeanRecord`` s, which carry the attributes of aiokafka's ``ConsumerRecord``
at half its cost (``streams._lean``). The rest of liqmon only relies on the read-only
attributes listed in :class:`InboundRecord`, so tests and replays can supply their own
records.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol

__all__ = ["Headers", "InboundRecord", "OutboundRecord", "TopicPartition", "next_offsets"]

Headers = Sequence[tuple[str, bytes]]
"""Kafka record headers: ordered ``(name, value)`` pairs; a name may repeat."""

if TYPE_CHECKING:

    class TopicPartition(NamedTuple):
        """One partition of one topic (aiokafka ships no type hints; this mirrors its class)."""

        topic: str
        partition: int

else:
    # aiokafka checks ``isinstance(tp, TopicPartition)`` against its own class.
    from aiokafka.structs import TopicPartition


class InboundRecord(Protocol):
    """What liqmon reads from a consumed record (``LeanRecord`` and aiokafka's
    ``ConsumerRecord`` fit)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def timestamp(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...

    @property
    def headers(self) -> Headers: ...


class OutboundRecord(NamedTuple):
    """A record to produce. The partition follows from ``key`` (Kafka's default partitioner).

    A plain ``(topic, key, value, headers)`` tuple is accepted wherever this is.
    """

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers = ()


def next_offsets(records: Iterable[InboundRecord]) -> dict[TopicPartition, int]:
    """The offset to commit per partition after processing ``records``: last offset + 1.

    Kafka's committed offset names the next record to read, not the last one read.
    """
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        following = record.offset + 1
        if offsets.get(tp, -1) < following:
            offsets[tp] = following
    return offsets
