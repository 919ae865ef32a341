"""Recovery: rebuild an instance's state from ``liqmon-state`` and the ledger.

At start-up the price guard resumes from the marks the last run accepted. When the group
assigns ledger partitions, the book is rebuilt: each partition's newest snapshot is
loaded (when there is one), then the ledger after it is replayed silently up to where the
last run got (the committed offset, or the changelog's checkpoint if that is further);
ledger records deleted by retention that no snapshot covers are an error naming the
partition. Then every unit's state and transition count is restored from the changelog, and
every unit is judged afresh at the current prices. Only transitions the last run did not
publish come out, as ``collapsed`` events from the last published state straight to the
current one. Ledger records the rebuild cannot apply (an instrument removed from the
instruments file) are counted and reported once.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing

import msgspec
import structlog

from monitor.book import load_snapshots
from monitor.changelog import RestoredState, SnapshotKeys, read_changelog
from monitor.clients import fetch_sizes
from monitor.config import Settings
from monitor.dynamic import DynamicMargin
from monitor.engine import Engine, judge_all, restore_states, shape_problem, unit_record
from monitor.errors import LiqmonError
from monitor.intake import PROCESSING_ERROR, Intake
from monitor.metrics import Metrics
from monitor.partitions import AccountPartitions
from monitor.schema import Instrument, MarginEvent, SnapshotChunk, UnitStates
from streams import HistoryGap, InboundRecord, TopicPartition, read_history

__all__ = ["Rebuilt", "Recovery", "RecoveryError"]

log = structlog.get_logger("liqmon.recovery")

_PROGRESS_INTERVAL_S = 5.0


class RecoveryError(LiqmonError):
    """The state of an assigned partition cannot be rebuilt (its history is gone)."""


class Rebuilt(msgspec.Struct, kw_only=True):
    """A book rebuilt for an assignment, and what it has to publish.

    ``resume`` is where the live consumer goes on per partition; ``ahead`` the partitions
    whose changelog checkpoint is past the committed offset (commit and seek to it).
    """

    engine: Engine
    partitions: AccountPartitions
    resume: dict[TopicPartition, int]
    ahead: dict[TopicPartition, int]
    events: list[MarginEvent]
    states: list[UnitStates]
    replayed: int
    snapshot_keys: dict[TopicPartition, SnapshotKeys]
    now_ms: int = 0  # the clock the rebuild judged at


class Recovery:
    """Restores the guard and rebuilds books; owns what a restart needs from the changelog."""

    def __init__(
        self,
        settings: Settings,
        instruments: Sequence[Instrument],
        intake: Intake,
        metrics: Metrics,
        clock_ms: Callable[[], int],
        dynamic: DynamicMargin | None = None,
    ) -> None:
        self._settings = settings
        self._dynamic = dynamic
        self._instruments = tuple(instruments)
        self._intake = intake
        self._metrics = metrics
        self._clock_ms = clock_ms
        self._dropped_counted = 0
        self._startup_read: RestoredState | None = None
        # Snapshot chunks are up to 800 KiB: Kafka's default 1 MiB per partition and fetch
        # would bring about one chunk per partition per round trip.
        self._fetch = fetch_sizes(settings.service)
        self._rebuilt_once = False

    async def read_changelog(self) -> RestoredState:
        """The changelog's newest record per key; undecodable records counted once each.

        The read at start-up is kept for the first rebuild, which then reads only what
        was written since (at a million accounts the snapshots alone are hundreds of MB);
        later rebuilds read the whole topic again (the kept read is dropped, its memory
        freed, once the first rebuild has used it).
        """
        since, self._startup_read = self._startup_read, None
        changelog = await read_changelog(
            self._settings.kafka, self._settings.topics.state, since=since, **self._fetch
        )
        if not self._rebuilt_once:
            self._startup_read = changelog
        # The changelog is read at start and at each rebuild: count each bad record once.
        if changelog.dropped > self._dropped_counted:
            self._metrics.changelog_records_dropped.inc(changelog.dropped - self._dropped_counted)
            self._dropped_counted = changelog.dropped
            log.error(
                "undecodable liqmon-state records ignored",
                records=changelog.dropped,
                first=changelog.dropped_example[:300],
            )
        return changelog

    def resume_prices(self, engine: Engine, changelog: RestoredState) -> None:
        """Screen the price table against the marks the last run accepted, and value the
        book at them until fresher accepted ticks replace them."""
        book = engine.book
        references = [
            tick
            for tick in changelog.price_references.values()
            if shape_problem(book, tick) is None
        ]
        self._intake.restore(references, changelog.prices_screened)
        if references:
            engine.apply([], references, self._clock_ms())
            log.info("price guard resumed", references=len(references))

    async def rebuild(
        self, assigned: frozenset[TopicPartition], committed: dict[TopicPartition, int]
    ) -> Rebuilt:
        """A fresh book for ``assigned``: replay, restore states, judge at current prices."""
        started = time.perf_counter()
        engine = Engine(self._instruments, self._settings.engine)
        partitions = AccountPartitions()
        now_ms = self._clock_ms()
        if self._dynamic is not None:  # the rates dynamic margin has set, before judging
            engine.rescale(self._dynamic.scales(), {}, now_ms, self._dynamic.range_scales())
        if self._intake.prices:
            engine.apply([], list(self._intake.prices.values()), now_ms)
        changelog = await self.read_changelog()
        self._rebuilt_once, self._startup_read = True, None
        resume = {
            tp: max(offset, changelog.checkpoints.get(tp, 0)) for tp, offset in committed.items()
        }
        start = self._load_snapshots(engine, changelog, resume, partitions)
        total = sum(resume[tp] - start[tp] for tp in resume)
        skipped: Counter[tuple[str, str]] = Counter()  # (reason, symbol or error) -> records
        history = read_history(self._settings.kafka, resume, start=start, **self._fetch)
        try:
            replayed = await self._replay(history, engine, partitions, skipped, total)
        except HistoryGap as exc:
            raise RecoveryError(
                f"{exc}; no snapshot in {self._settings.topics.state} covers them: take "
                "snapshots (service.snapshot_interval_s) well within the retention of "
                f"{self._settings.topics.fills}, or restore the deleted records"
            ) from None
        self._report_skipped(skipped)
        restore_states(engine, changelog.states)
        owned = {tp.partition for tp in assigned}  # of the fills topic
        events = [
            event
            for event in judge_all(engine, now_ms)
            if partitions.partition(engine.book, event.account) in owned
        ]
        states = [unit_record(engine, a, now_ms) for a in dict.fromkeys(e.account for e in events)]
        log.info(
            "state rebuilt",
            partitions=sorted(tp.partition for tp in assigned),
            replayed=replayed,
            accounts=engine.account_count,
            events=len(events),
            seconds=round(time.perf_counter() - started, 3),
        )
        return Rebuilt(
            engine=engine,
            partitions=partitions,
            resume=resume,
            ahead={tp: offset for tp, offset in resume.items() if offset > committed[tp]},
            events=events,
            states=states,
            replayed=replayed,
            now_ms=now_ms,
            snapshot_keys={tp: changelog.snapshot_keys(tp) for tp in assigned},
        )

    async def _replay(
        self,
        history: AsyncGenerator[list[InboundRecord], None],
        engine: Engine,
        partitions: AccountPartitions,
        skipped: Counter[tuple[str, str]],
        total: int,
    ) -> int:
        """Apply the ledger records of ``history`` silently; count what does not apply."""
        replayed = 0
        now_ms = self._clock_ms()
        next_report = time.monotonic() + _PROGRESS_INTERVAL_S
        async with aclosing(history) as batches:
            async for records in batches:
                # Rejected records were dead-lettered when first read, unless the
                # instruments changed since (a delisting): those are counted.
                items, _, rejected = self._intake.ledger_batch(records, engine, partitions)
                engine.apply(items, [], now_ms)
                partitions.settle(engine.book)
                for rejection in rejected:
                    skipped[(rejection.reason, _symbol_of(rejection.value))] += 1
                for _, error in engine.failures:
                    skipped[(PROCESSING_ERROR, error[:80])] += 1
                replayed += len(records)
                if time.monotonic() >= next_report:
                    next_report += _PROGRESS_INTERVAL_S
                    accounts = engine.account_count
                    log.info("replaying ledger", records=replayed, of=total, accounts=accounts)
        return replayed

    def _load_snapshots(
        self,
        engine: Engine,
        changelog: RestoredState,
        resume: dict[TopicPartition, int],
        partitions: AccountPartitions,
    ) -> dict[TopicPartition, int]:
        """Load the newest snapshot of each partition that has one not past ``resume``;
        return where each partition's replay starts."""
        start = dict.fromkeys(resume, 0)
        chunks: list[SnapshotChunk] = []
        for tp, until in resume.items():
            snapshot = changelog.snapshot(tp)
            if snapshot is None or snapshot[0].next_offset > until:
                continue
            start[tp] = snapshot[0].next_offset
            chunks.extend(snapshot)
            for chunk in snapshot:
                partitions.note_many(chunk.accounts, tp.partition)
        if not chunks:
            return start
        began = time.perf_counter()
        delisted = load_snapshots(engine.book, chunks)
        partitions.settle(engine.book)
        engine.full_recompute()
        log.info(
            "snapshots loaded",
            partitions=sorted(tp.partition for tp, offset in start.items() if offset),
            accounts=engine.account_count,
            positions=engine.position_count,
            seconds=round(time.perf_counter() - began, 3),
        )
        if delisted:
            self._metrics.replay_records_rejected.labels("unknown_instrument").inc(len(delisted))
            log.warning(
                "snapshot positions in instruments no longer configured are not judged",
                unknown_symbols=delisted[:20],
            )
        return start

    def _report_skipped(self, skipped: Counter[tuple[str, str]]) -> None:
        """Say once per rebuild which ledger records could not be applied, and count them.

        Most were dead-lettered when first read. Records for instruments that are no
        longer in the instruments file were not: their positions are not judged.
        """
        if not skipped:
            return
        by_reason: Counter[str] = Counter()
        for (reason, _), count in skipped.items():
            by_reason[reason] += count
        for reason, count in by_reason.items():
            self._metrics.replay_records_rejected.labels(reason).inc(count)
        unknown = sorted({s for (r, s), _ in skipped.items() if r == "unknown_instrument" and s})
        log.warning(
            "ledger records not applied in the rebuild",
            by_reason=dict(by_reason),
            unknown_symbols=unknown[:20],
            hint="positions in instruments missing from the instruments file are not judged; "
            "add the instruments back or close the positions",
        )


class _SymbolOnly(msgspec.Struct):
    symbol: str | None = None


def _symbol_of(value: bytes | None) -> str:
    """The ``symbol`` of a ledger record's JSON, for reporting; "" when it has none."""
    if not value:
        return ""
    try:
        symbol = msgspec.json.decode(value, type=_SymbolOnly).symbol
    except msgspec.DecodeError:
        return ""
    return symbol[:64] if symbol else ""
