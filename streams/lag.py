"""Consumer lag per partition: how many offsets a consumer still has to read.

Lag is ``end - position`` where ``end`` is the last stable offset for a
``read_committed`` consumer (records of open transactions cannot be read yet) and
the high watermark otherwise. Both come free with every fetch response; only
partitions not fetched yet cost one ``ListOffsets`` request.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from streams.records import TopicPartition

__all__ = ["IsolationLevel", "partition_lag"]

IsolationLevel = Literal["read_committed", "read_uncommitted"]


async def partition_lag(
    consumer: Any,
    partitions: Iterable[TopicPartition],
    isolation_level: IsolationLevel,
) -> dict[TopicPartition, int]:
    """The lag (never negative) of each of ``partitions``, assigned to aiokafka ``consumer``."""
    ends: dict[TopicPartition, int] = {}
    unknown: list[TopicPartition] = []
    for tp in partitions:
        end = consumer.last_stable_offset(tp) if isolation_level == "read_committed" else None
        if end is None or end < 0:
            end = consumer.highwater(tp)
        if end is None:
            unknown.append(tp)
        else:
            ends[tp] = end
    if unknown:
        ends.update(await consumer.end_offsets(unknown))
    return {tp: max(0, end - await consumer.position(tp)) for tp, end in ends.items()}
