"""When and what to snapshot: each owned ledger partition's book, every so often.

Every ``service.snapshot_interval_s`` (staggered: one partition per cycle) the book of
an owned partition goes to ``liqmon-state`` as chunks inside the cycle's transaction,
so the snapshot's offset matches the offsets committed with it. Recovery
(``monitor.recovery``) loads the newest and replays only the ledger after it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import msgspec
import structlog

from monitor.book import export_partition
from monitor.changelog import SNAPSHOT_CHUNK_BYTES, snapshot_records
from monitor.engine import Engine
from monitor.metrics import Metrics
from monitor.partitions import AccountPartitions
from streams import OutboundRecord, TopicPartition

__all__ = ["Snapshots"]

log = structlog.get_logger("liqmon.snapshots")


class Snapshots:
    """The snapshot schedule of the partitions this instance owns."""

    def __init__(self, state_topic: str, interval_s: float, metrics: Metrics) -> None:
        self._topic = state_topic
        self._interval_s = interval_s
        self._metrics = metrics
        self._next: dict[TopicPartition, float] = {}
        self._chunks: dict[TopicPartition, int] = {}  # chunks of each partition's last one
        self._encode = msgspec.json.Encoder().encode

    def schedule(
        self, assigned: frozenset[TopicPartition], previous_chunks: Mapping[TopicPartition, int]
    ) -> None:
        """Plan the next snapshot of each newly assigned partition, spread over an interval."""
        self._chunks = dict(previous_chunks)
        now = time.monotonic()
        ordered = sorted(assigned)
        self._next = {
            tp: now + self._interval_s * (k + 1) / len(ordered) for k, tp in enumerate(ordered)
        }

    def due(self, owned: frozenset[TopicPartition]) -> bool:
        """Whether an owned partition's snapshot is due (an idle monitor takes it too)."""
        if self._interval_s <= 0:
            return False
        now = time.monotonic()
        return any(self._next.get(tp, now + 1) <= now for tp in owned)

    def take(
        self,
        engine: Engine,
        owned: frozenset[TopicPartition],
        partitions: AccountPartitions,
        next_offsets: Mapping[TopicPartition, int],
        now_ms: int,
    ) -> list[OutboundRecord]:
        """The records of at most one owned partition's snapshot whose turn has come.

        ``next_offsets`` is where the book stands per partition once the cycle commits.
        """
        now = time.monotonic()
        due = [tp for tp in sorted(owned) if self._next.get(tp, now + 1) <= now]
        if self._interval_s <= 0 or not due:
            return []
        tp = due[0]
        self._next[tp] = now + self._interval_s
        started = time.perf_counter()
        book = engine.book
        accounts = partitions.accounts_of(book, tp.partition)
        chunks = export_partition(
            book,
            accounts,
            topic=tp.topic,
            partition=tp.partition,
            next_offset=next_offsets.get(tp, 0),
            ts=now_ms,
            max_bytes=SNAPSHOT_CHUNK_BYTES,
            encode=self._encode,
        )
        records = snapshot_records(self._topic, chunks, self._chunks.get(tp, 0))
        self._chunks[tp] = len(chunks)
        seconds = time.perf_counter() - started
        self._metrics.snapshots_written.inc()
        self._metrics.snapshot_duration.set(seconds)
        log.info(
            "snapshot taken",
            partition=tp.partition,
            accounts=int(accounts.size),
            chunks=len(chunks),
            next_offset=next_offsets.get(tp, 0),
            seconds=round(seconds, 3),
        )
        return records
