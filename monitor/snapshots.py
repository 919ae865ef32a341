"""When and what to snapshot: each owned ledger partition's book, every so often.

Every ``service.snapshot_interval_s`` (staggered over the partitions) one owned
partition's snapshot is taken, one at a time, so that no cycle stalls on it:

* **The copy.** At the end of a cycle the partition's copy begins: the following cycles
  copy its accounts out of the book a step at a time (:meth:`PartitionImage.in_steps
  <monitor.book.PartitionImage.in_steps>`, up to ``_COPY_STEP_S`` of work each; about
  0.1 s in all for a sixth of a book of a million accounts). Meanwhile ticks flow but no cycle
  books ledger records (:meth:`Snapshots.copying`: the service holds them back), so
  the snapshot is of the book after that first cycle's ledger, and its offset is the one
  that cycle commits.
* **The chunks.** Then each cycle plans, builds and encodes a chunk or so from the copy
  (up to ``_STEP_BYTES`` or ``_STEP_S`` of work, and at most ``_WRITE_BYTES_PER_S``) and
  writes them inside its own transaction, into the slot that does not hold the
  partition's newest complete snapshot.
* **The switch.** The cycle that writes the last chunk also writes null values for the
  keys left stale (the other slot's, and its own beyond the new length). Until then
  recovery loads the older snapshot (``monitor.recovery``), which stays complete.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping

import msgspec
import structlog

from monitor.book import BookMoved, PartitionImage
from monitor.changelog import SNAPSHOT_CHUNK_BYTES, SnapshotKeys, snapshot_key, snapshot_nulls
from monitor.engine import Engine
from monitor.errors import InputError
from monitor.metrics import Metrics
from monitor.partitions import AccountPartitions
from streams import OutboundRecord, TopicPartition

__all__ = ["Snapshots"]

log = structlog.get_logger("liqmon.snapshots")

# Of chunks written per cycle, about (whole chunks). The cycle's commit carries them: at
# 2 MiB a cycle its commit took 15-53 ms on a loaded 2-core host, and the ticks behind
# it waited up to 115 ms for as long as a snapshot was being written (about 0.7 s).
_STEP_BYTES = 256 * 1024
_STEP_S = 0.005  # of planning, building and encoding per cycle, about
# Of copying per cycle, about (steps of 1-3 ms). At 5 ms the cycles of the second a
# sixth of a million accounts took to copy ran a quarter slower at 100,000 ticks/s, and
# their ticks waited twice as long (p50 48 ms against 22-26 after).
_COPY_STEP_S = 0.002
# Of chunks written per second, at most (whole chunks: the next waits its turn). Under
# load the cycles came every 20 ms and wrote 40 MB/s to a broker sharing two cores with
# the monitor; the ticks judged meanwhile (3 s of every 50 at a million accounts) were
# 98% of those past the p99 in a run. An idle monitor's cycles (one per poll timeout)
# write at most 4 MB/s: a sixth of a million accounts (67 MB) takes 8-17 s either way.
_WRITE_BYTES_PER_S = 8 * 2**20


def _complete(keys: SnapshotKeys | None) -> bool:
    """Whether the changelog holds a complete snapshot of the partition (``keys``)."""
    return keys is not None and keys.newest is not None


class _Writing:
    """A snapshot being taken: its copy of the book (``image`` once taken) and what is
    left to write."""

    def __init__(
        self,
        tp: TopicPartition,
        copy: Iterator[PartitionImage | None],
        slot: int,
        keys: SnapshotKeys,
        began: float,
        ts_ms: int,
    ) -> None:
        self.tp = tp
        self.ts_ms = ts_ms  # the book time of the copy
        self.copy = copy
        self.slot = slot
        self.keys = keys
        self.image: PartitionImage | None = None
        self.records: Iterator[tuple[list[OutboundRecord], bool]] = iter(())
        self.began = began  # monotonic, before its copy was begun
        self.seconds = 0.0  # of work on the loop, summed over its cycles
        self.cycles = 0
        self.chunks = 0
        self.write_at = 0.0  # clock time from which the next chunk may be written


class Snapshots:
    """The snapshot schedule of the partitions this instance owns, and the one being
    written."""

    def __init__(
        self,
        state_topic: str,
        interval_s: float,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock``: seconds, for the schedule and the write rate (monotonic)."""
        self._clock = clock
        self._topic = state_topic
        self._interval_s = interval_s
        self._metrics = metrics
        self._next: dict[TopicPartition, float] = {}
        self._keys: dict[TopicPartition, SnapshotKeys] = {}
        self._writing: _Writing | None = None
        self._stamped: set[str] = set()  # partitions with a liqmon_snapshot_timestamp_seconds
        self._missing: set[TopicPartition] = set()  # owned, no complete snapshot anywhere
        self._quiet_until = 0.0  # no "cannot keep up" warning before (clock seconds)
        self._encode = msgspec.json.Encoder().encode

    def schedule(
        self, assigned: frozenset[TopicPartition], keys: Mapping[TopicPartition, SnapshotKeys]
    ) -> None:
        """Plan the next snapshot of each newly assigned partition, spread over an
        interval; ``keys``: the snapshot keys the changelog holds for each. A snapshot
        being written for the book this replaces is dropped."""
        self._keys = dict(keys)
        self._writing = None
        owned = {str(tp.partition) for tp in assigned}
        for partition in self._stamped - owned:
            self._metrics.snapshot_timestamp.remove(partition)  # no longer this instance's
        self._stamped &= owned
        on = self._interval_s > 0  # off: none is missing
        self._missing = {tp for tp in assigned if not _complete(keys.get(tp))} if on else set()
        self._metrics.snapshot_partitions_missing.set(len(self._missing))
        now = self._clock()
        ordered = sorted(assigned)
        self._next = {
            tp: now + self._interval_s * (k + 1) / len(ordered) for k, tp in enumerate(ordered)
        }

    def due(self, owned: frozenset[TopicPartition]) -> bool:
        """Whether a cycle has snapshot work: one being written, or an owned partition's
        turn (an idle monitor takes it too)."""
        if self._interval_s <= 0:
            return False
        if self._writing is not None and self._writing.tp in owned:
            return True
        now = self._clock()
        return any(self._next.get(tp, now + 1) <= now for tp in owned)

    def take(
        self,
        engine: Engine,
        owned: frozenset[TopicPartition],
        partitions: AccountPartitions,
        next_offsets: Mapping[TopicPartition, int],
        now_ms: int,
        *,
        may_begin: bool = True,
    ) -> list[OutboundRecord]:
        """This cycle's snapshot records: the next chunks of the one being written (once
        its copy is taken), or none when a partition's turn comes and its copy begins.

        ``next_offsets`` is where the book stands per partition once the cycle commits.
        Without ``may_begin`` a partition whose turn has come waits (the service holds a
        snapshot back while a solvency stress runs: the two images of the book together
        were the monitor's memory peak).
        """
        if self._interval_s <= 0:
            return []
        if self._writing is not None and self._writing.tp not in owned:
            self._writing = None  # revoked: the next assignment schedules afresh
        if self._writing is not None:
            return self._step(self._writing)
        now = self._clock()
        due = [tp for tp in owned if self._next.get(tp, now + 1) <= now]
        if due and may_begin:
            # The longest waiting first: when snapshots take longer than the interval
            # allows every partition, they take turns, not the lowest partitions all.
            tp = min(due, key=lambda tp: (self._next[tp], tp))
            self._warn_if_late(tp, now)
            self._begin(engine, tp, partitions, next_offsets.get(tp, 0), now_ms)
        return []

    def _warn_if_late(self, tp: TopicPartition, now: float) -> None:
        """Say so (at most once an interval) when a partition's turn comes more than an
        interval late: writing every owned partition takes longer than the interval."""
        late = now - self._next[tp]
        if late <= self._interval_s or now < self._quiet_until:
            return
        self._quiet_until = now + self._interval_s
        log.warning(
            "snapshots cannot keep up",
            partition=tp.partition,
            late_s=round(late, 1),
            interval_s=self._interval_s,
            partitions=len(self._next),
            hint="each partition is snapshotted less often than service.snapshot_interval_s "
            "(a sixth of a million accounts takes about 15 s): raise it, or spread the "
            "partitions over more instances",
        )

    def _begin(
        self,
        engine: Engine,
        tp: TopicPartition,
        partitions: AccountPartitions,
        next_offset: int,
        now_ms: int,
    ) -> None:
        """Begin copying ``tp``'s accounts out of the book; the next cycles copy them, a
        step at a time (the ledger held: :meth:`copying`), then write them."""
        started, began = time.perf_counter(), self._clock()
        self._next[tp] = began + self._interval_s
        book = engine.book
        copy = PartitionImage.in_steps(
            book,
            partitions.accounts_of(book, tp.partition),
            topic=tp.topic,
            partition=tp.partition,
            next_offset=next_offset,
            ts=now_ms,
        )
        next(copy)  # notes what to copy: the book as this cycle leaves it
        keys = self._keys.setdefault(tp, SnapshotKeys())
        self._writing = _Writing(tp, copy, keys.next_slot, keys, began, now_ms)
        self._writing.seconds = time.perf_counter() - started

    def copying(self, owned: frozenset[TopicPartition]) -> bool:
        """Whether the copy of an owned partition's snapshot is being taken (:meth:`due`
        then holds): until it is, no cycle may book ledger records (the service holds
        them back)."""
        writing = self._writing
        return writing is not None and writing.image is None and writing.tp in owned

    def _records(
        self, tp: TopicPartition, image: PartitionImage, slot: int, keys: SnapshotKeys
    ) -> Iterator[tuple[list[OutboundRecord], bool]]:
        """The records of ``image`` in ``slot``, a chunk at a time, the last one with the
        null values for the keys it leaves stale, and whether that was the last; nothing
        after each piece planned (a step may stop there)."""
        pieces = []
        for piece in image.plan(SNAPSHOT_CHUNK_BYTES, self._encode):
            pieces.append(piece)
            yield [], False
        total = len(pieces)
        for n, piece in enumerate(pieces):
            value = self._encode(image.chunk(piece, n, total))
            records = [OutboundRecord(self._topic, snapshot_key(tp, slot, n), value)]
            # Counted as written at once: a snapshot dropped half-way (its partition
            # revoked, then given back) leaves keys the next one in this slot must null.
            keys.counts[slot] = max(keys.counts.get(slot, 0), n + 1)
            if n < total - 1:
                yield records, False
                continue
            records.extend(snapshot_nulls(self._topic, tp, keys, slot, total))
            self._keys[tp] = SnapshotKeys(counts={slot: total}, newest=slot)
            yield records, True

    def _step(self, writing: _Writing) -> list[OutboundRecord]:
        """The next steps of ``writing``'s copy, then its next records: about
        ``_STEP_BYTES``, or ``_STEP_S`` of work."""
        started = time.perf_counter()
        records: list[OutboundRecord] = []
        finished = False
        size = 0
        try:
            while writing.image is None and time.perf_counter() - started < _COPY_STEP_S:
                writing.image = next(writing.copy)
                if writing.image is not None:
                    writing.records = self._records(
                        writing.tp, writing.image, writing.slot, writing.keys
                    )
            while (
                writing.image is not None
                and not finished
                and size < _STEP_BYTES
                and self._clock() >= writing.write_at
                and time.perf_counter() - started < _STEP_S
            ):
                more, finished = next(writing.records)
                records.extend(more)
                size += sum(len(r.value or b"") for r in more)
                writing.chunks += sum(r.value is not None for r in more)
            if size:
                writing.write_at = self._clock() + size / _WRITE_BYTES_PER_S
        except (InputError, BookMoved) as exc:  # dropped, not a crash loop
            self._drop(writing, exc)
            return records
        writing.cycles += 1
        writing.seconds += time.perf_counter() - started
        if finished:
            self._finish(writing)
        return records

    def _drop(self, writing: _Writing, exc: InputError | BookMoved) -> None:
        """Give up this snapshot (its partition's older one stays in use) and say why."""
        self._writing = None
        hint = (
            "restarts replay the ledger from the partition's last snapshot; a chunk "
            "(800 KiB of JSON) must hold the lists of instruments and assets, an account's "
            "name and one of its position rows or ledger ids"
            if isinstance(exc, InputError)
            else "a bug: the partition's next turn copies afresh; report it with this log"
        )
        log.error("snapshot not written", partition=writing.tp.partition, error=str(exc), hint=hint)

    def _finish(self, writing: _Writing) -> None:
        assert writing.image is not None  # written from it
        self._writing = None
        self._metrics.snapshots_written.inc()
        self._metrics.snapshot_duration.set(writing.seconds)
        partition = str(writing.tp.partition)
        self._metrics.snapshot_timestamp.labels(partition).set(writing.ts_ms / 1000)
        self._stamped.add(partition)
        self._missing.discard(writing.tp)
        self._metrics.snapshot_partitions_missing.set(len(self._missing))
        log.info(
            "snapshot written",
            partition=writing.tp.partition,
            accounts=writing.image.size,
            next_offset=writing.image.next_offset,
            chunks=writing.chunks,
            cycles=writing.cycles,
            seconds=round(writing.seconds, 3),
            wall_seconds=round(self._clock() - writing.began, 3),
        )
