"""End offsets past every transaction open when they were asked for.

A ``read_committed`` reader stops at a partition's last stable offset: the first record
of a transaction still open. A producer killed mid-transaction leaves one open until the
broker aborts it (its ``transaction.timeout.ms`` later), and until then every record
after it, committed or not, is out of reach: a reader that takes "the end" to mean the
last stable offset silently misses them. :func:`settled_ends` returns each partition's
high watermark once every transaction open below it has ended, so reading up to those
ends reads everything that was written before the call, committed, whole.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer

from streams.errors import StreamsError
from streams.records import TopicPartition
from streams.settings import KafkaSettings, client_kwargs

__all__ = ["SETTLE_TIMEOUT_S", "settled_ends"]

# Long enough for the broker to abort a dead producer's transaction at the Java
# client's default transaction.timeout.ms (60 s) plus its abort check (10 s).
SETTLE_TIMEOUT_S = 90.0
_POLL_S = 0.2


async def settled_ends(
    kafka: KafkaSettings,
    partitions: Sequence[TopicPartition],
    *,
    timeout_s: float = SETTLE_TIMEOUT_S,
    on_wait: Callable[[str], None] | None = None,
) -> dict[TopicPartition, int]:
    """The high watermark of each of ``partitions`` now, returned once no transaction
    open below it is left (their records are then committed or aborted for good).

    ``on_wait`` hears once, in one line, what is waited for. Raises
    :class:`StreamsError` if a transaction is still open after ``timeout_s``.
    """
    if not partitions:
        return {}
    options = {**client_kwargs(kafka), "enable_auto_commit": False}
    latest = AIOKafkaConsumer(**options, isolation_level="read_uncommitted")
    stable = AIOKafkaConsumer(**options, isolation_level="read_committed")
    await latest.start()
    try:
        await stable.start()
        try:
            high: dict[TopicPartition, int] = await latest.end_offsets(list(partitions))
            deadline = time.monotonic() + timeout_s
            told = False
            while True:
                lso: dict[TopicPartition, int] = await stable.end_offsets(list(partitions))
                waiting = sorted(tp for tp in partitions if lso[tp] < high[tp])
                if not waiting:
                    return high
                tp = waiting[0]
                where = f"{tp.topic}[{tp.partition}]"
                if time.monotonic() >= deadline:
                    raise StreamsError(
                        f"{where} has a transaction open since offset {lso[tp]} for over "
                        f"{timeout_s:g} s (a producer that died mid-transaction, until the "
                        "broker aborts it after its transaction.timeout.ms); run again later"
                    )
                if not told and on_wait is not None:
                    told = True
                    on_wait(
                        f"waiting for the transaction open since offset {lso[tp]} of {where}"
                        + (f" and {len(waiting) - 1} more" if len(waiting) > 1 else "")
                        + " to end (a producer killed mid-transaction is aborted by the "
                        "broker after its transaction.timeout.ms)"
                    )
                await asyncio.sleep(_POLL_S)
        finally:
            await stable.stop()
    finally:
        await latest.stop()
