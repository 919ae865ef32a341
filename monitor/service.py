"""`liqmon run`: prices and ledger from Kafka, through the engine, margin events to Kafka.

One cycle: take what both consumers have (bounded), decode, send bad input to the
DLQ, screen the ticks through the price guards, apply everything to the engine,
publish the events together with the state changelog, and only once the broker
acknowledged all of it commit the ledger offsets. At-least-once: after a crash a
cycle can be repeated, and its events then carry the same ``event_id``. The cycle
is shaped to become one Kafka transaction.

Start-up: read the whole price table first (not ready before), then, for the
ledger partitions the group assigns, rebuild the book by replaying them silently
up to where the last run got, restore the published states, and judge everyone at
the current prices.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from typing import Any

import msgspec
import structlog

from monitor.changelog import checkpoint_records, read_changelog, state_record
from monitor.config import Settings
from monitor.engine import Engine, judge_all, restore_states, unit_states
from monitor.http import HealthServer
from monitor.intake import Intake
from monitor.metrics import Metrics
from monitor.schema import Instrument, LedgerEvent, MarginEvent, PriceTick
from streams import (
    CommitRejectedError,
    InboundRecord,
    LedgerConsumer,
    OutboundRecord,
    Producer,
    TableConsumer,
    TopicPartition,
    next_offsets,
    read_history,
    topic_partitions,
)

__all__ = ["Monitor"]

log = structlog.get_logger("liqmon.service")

_LAG_INTERVAL_S = 1.0
_PROGRESS_INTERVAL_S = 5.0
_FETCH_MAX_BYTES = 50 * 1024 * 1024  # Kafka's default fetch.max.bytes
_REBALANCE_LOCK_TIMEOUT_S = 30.0


class Monitor:
    """One monitor instance: its consumers, engine, producer, metrics and HTTP server."""

    def __init__(
        self,
        settings: Settings,
        instruments: Sequence[Instrument],
        *,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.settings = settings
        self.instruments = tuple(instruments)
        self.metrics = Metrics()
        self.engine = Engine(self.instruments, settings.engine)
        self._clock_ms = clock_ms
        service = settings.service
        self._intake = Intake(service, settings.topics.dlq, self.metrics)
        self._encode = msgspec.json.Encoder().encode
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()
        self._owned: frozenset[TopicPartition] = frozenset()
        self._positions: dict[TopicPartition, int] = {}  # next ledger offset processed
        self._account_partition: dict[str, TopicPartition] = {}
        self._ignored_seen: dict[str, int] = {}  # engine.ignored already counted in metrics
        self._restored = False  # ledger partitions assigned and their state rebuilt
        self._built = False  # the book has been built for some assignment
        # Read at scrape time, so /metrics and /readyz can never disagree.
        self.metrics.ready.set_function(lambda: 1.0 if self.readiness()[0] else 0.0)
        self.http = HealthServer(
            service.http_host, service.http_port, self.metrics.exposition, self.readiness
        )
        fetch: dict[str, Any] = {
            "max_partition_fetch_bytes": service.max_partition_fetch_bytes,
            "fetch_max_bytes": max(_FETCH_MAX_BYTES, service.max_partition_fetch_bytes),
        }
        self._producer = Producer(settings.kafka, linger_ms=0)
        self._table = TableConsumer(settings.kafka, topic=settings.topics.prices, **fetch)
        self._ledger = LedgerConsumer(
            settings.kafka,
            topic=settings.topics.fills,
            group_id=service.group_id,
            on_assigned=self._on_assigned,
            on_revoked=self._on_revoked,
            **fetch,
        )

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Ask the monitor to finish the cycle in hand, commit, and return from :meth:`run`."""
        self._stop.set()

    @property
    def owned_partitions(self) -> frozenset[TopicPartition]:
        """The ledger partitions whose accounts this instance judges now."""
        return self._owned

    def owns(self, account: str) -> bool:
        """Whether this instance publishes ``account``'s events."""
        return self._account_partition.get(account) in self._owned

    def readiness(self) -> tuple[bool, str]:
        """Ready once caught up on prices and the ledger partitions are assigned and restored."""
        if not self._table.caught_up:
            return False, "catching up on prices"
        if not self._restored:
            return False, "waiting for ledger partitions"
        return True, ""

    async def run(self) -> None:
        """Run until :meth:`stop` (or cancellation); always closes clients on the way out."""
        async with AsyncExitStack() as stack:
            await self.http.start()
            stack.push_async_callback(self.http.stop)
            await self._producer.start()
            stack.push_async_callback(self._producer.stop)
            topics = self.settings.topics
            for topic in (topics.fills, topics.margin_events, topics.state, topics.dlq):
                await topic_partitions(self.settings.kafka, topic)  # one-line error if missing
            await self._table.start()
            stack.push_async_callback(self._table.stop)
            log.info("started", metrics_port=self.http.port, topics=self.settings.topics.names())
            await self._catch_up_prices()
            if self._stop.is_set():
                return
            await self._ledger.start()  # the first assignment restores state (_on_assigned)
            stack.push_async_callback(self._ledger.stop)
            await self._loop()
        log.info("stopped")

    async def _catch_up_prices(self) -> None:
        max_batch = self.settings.service.max_price_batch
        while not self._table.caught_up and not self._stop.is_set():
            records = await self._table.poll_batch(max_batch, 200)
            if records:
                now_ms = self._clock_ms()
                ticks, dead_letters = self._intake.price_batch(records, self.engine)
                self.engine.apply([], ticks, now_ms)  # no accounts yet: marks only
                if dead_letters:
                    await self._producer.send_batch(dead_letters)
                self._observe(records, [], [], ticks, [], now_ms)
        log.info("prices caught up", instruments=len(self._intake.prices))

    # ------------------------------------------------------------------ the loop

    async def _loop(self) -> None:
        service = self.settings.service
        polls: dict[str, asyncio.Task[list[InboundRecord]]] = {}
        stop_wait = asyncio.ensure_future(self._stop.wait())
        next_sweep = time.monotonic() + service.sweep_interval_s
        next_gauges = 0.0
        try:
            while not self._stop.is_set():
                if "prices" not in polls:
                    polls["prices"] = asyncio.ensure_future(
                        self._table.poll_batch(service.max_price_batch, service.poll_timeout_ms)
                    )
                if "ledger" not in polls:
                    polls["ledger"] = asyncio.ensure_future(
                        self._ledger.poll_batch(service.max_ledger_batch, service.poll_timeout_ms)
                    )
                await asyncio.wait(
                    [*polls.values(), stop_wait], return_when=asyncio.FIRST_COMPLETED
                )
                prices = polls.pop("prices").result() if polls["prices"].done() else []
                ledger = polls.pop("ledger").result() if polls["ledger"].done() else []
                if prices or ledger:
                    await self._cycle(prices, ledger)
                now = time.monotonic()
                if now >= next_gauges:
                    next_gauges = now + _LAG_INTERVAL_S
                    await self._update_gauges()
                if now >= next_sweep:
                    next_sweep = now + service.sweep_interval_s
                    self._sweep()
        finally:
            stop_wait.cancel()
            for task in polls.values():
                task.cancel()
            await asyncio.gather(*polls.values(), stop_wait, return_exceptions=True)

    async def _cycle(self, prices: list[InboundRecord], ledger: list[InboundRecord]) -> None:
        async with self._lock:
            started = time.perf_counter()
            now_ms = self._clock_ms()
            ticks, outbound = self._intake.price_batch(prices, self.engine)
            items, rejected = self._intake.ledger_batch(
                ledger, self.engine, self._account_partition
            )
            outbound.extend(self._intake.dead_letters(rejected))
            events = [e for e in self.engine.apply(items, ticks, now_ms) if self.owns(e.account)]
            outbound.extend(self._event_records(events, now_ms))
            consumed = next_offsets(ledger)
            outbound.extend(checkpoint_records(self.settings.topics.state, consumed))
            await self._producer.send_batch(outbound)
            if consumed:
                try:
                    committed = await self._ledger.commit(consumed)
                except CommitRejectedError as exc:
                    # The group rebalanced: the new owner re-reads these records and finds
                    # this cycle's states and checkpoints in liqmon-state.
                    log.warning("offsets not committed", reason=str(exc))
                else:
                    self._positions.update(committed)
            acked_ms = self._clock_ms()
            self._observe(prices, ledger, items, ticks, events, acked_ms)
            self.metrics.cycle_duration.observe(time.perf_counter() - started)

    # ------------------------------------------------------------------ output

    def _event_records(self, events: list[MarginEvent], now_ms: int) -> list[OutboundRecord]:
        """The events' records, then the state records of their accounts."""
        topics = self.settings.topics
        records: list[OutboundRecord] = []
        accounts: dict[str, None] = {}
        for event in events:
            key = event.account.encode()
            headers = [("type", event.type.encode())]
            records.append(OutboundRecord(topics.margin_events, key, self._encode(event), headers))
            accounts[event.account] = None
        for account in accounts:
            units = unit_states(self.engine, account)
            records.append(state_record(topics.state, account, units, now_ms))
        return records

    def _observe(
        self,
        prices: list[InboundRecord],
        ledger: list[InboundRecord],
        items: list[LedgerEvent],
        ticks: list[PriceTick],
        events: list[MarginEvent],
        acked_ms: int,
    ) -> None:
        m = self.metrics
        if prices:
            m.records_consumed.labels(self.settings.topics.prices).inc(len(prices))
        if ledger:
            m.records_consumed.labels(self.settings.topics.fills).inc(len(ledger))
        for kind, count in Counter(type(item) for item in items).items():
            m.ledger_events_applied.labels(kind.__struct_config__.tag).inc(count)
        for reason, count in self.engine.ignored.items():
            counted = self._ignored_seen.get(reason, 0)
            if count > counted:
                m.ledger_events_ignored.labels(reason).inc(count - counted)
                self._ignored_seen[reason] = count
        m.ticks_applied.inc(len(ticks))
        self._count_published(events, acked_ms)

    def _count_published(self, events: list[MarginEvent], acked_ms: int) -> None:
        m = self.metrics
        for event_type, count in Counter(event.type for event in events).items():
            m.events_published.labels(event_type).inc(count)
        for event in events:
            if event.trigger == "price":
                m.tick_to_event_latency.observe(max(0.0, (acked_ms - event.trigger_ts) / 1000))

    async def _update_gauges(self) -> None:
        m = self.metrics
        for state, count in self.engine.state_counts().items():
            m.accounts.labels(state).set(count)
        for kind, count in self.engine.position_counts().items():
            m.open_positions.labels(kind).set(count)
        guard = self._intake.guard
        newest = guard.newest_ts
        for symbol, ts in guard.accepted_ts().items():
            m.price_age.labels(symbol).set(max(0.0, (newest - ts) / 1000))
        for tp, lag in (await self._table.lag()).items():
            m.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)
        for tp, lag in (await self._ledger.lag()).items():
            m.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)

    def _sweep(self) -> None:
        self.metrics.sweeps.inc()
        problems = self.engine.verify()
        if problems:
            self.metrics.sweep_mismatches.inc(len(problems))
            log.error("full sweep disagrees with incremental state", problems=problems)

    # ------------------------------------------------------------------ rebalancing

    @asynccontextmanager
    async def _between_cycles(self) -> AsyncIterator[None]:
        """Hold the cycle lock: wait (bounded) for the cycle in hand to finish first.

        Only the wait is bounded; what runs inside (a rebuild replaying a long ledger)
        may take as long as it needs.
        """
        async with asyncio.timeout(_REBALANCE_LOCK_TIMEOUT_S):
            await self._lock.acquire()
        try:
            yield
        finally:
            self._lock.release()

    async def _on_revoked(self, revoked: frozenset[TopicPartition]) -> None:
        async with self._between_cycles():
            self._owned = self._owned - revoked
            self._restored = False

    async def _on_assigned(self, assigned: frozenset[TopicPartition]) -> None:
        """Rebuild the book for the new assignment unless it continues what we hold."""
        async with self._between_cycles():
            committed = await self._ledger.committed(assigned)
            # Keep the book only if the assignment is exactly what it was built for and
            # nobody else moved those partitions on; otherwise rebuild, which also drops
            # the accounts of partitions this instance lost.
            continuous = (
                self._built
                and assigned == frozenset(self._positions)
                and all(self._positions.get(tp) == offset for tp, offset in committed.items())
            )
            if not continuous:
                await self._rebuild(assigned, committed)
                # The rebuilt book holds millions of long-lived objects (ids, names);
                # move them out of the collector's sight so full collections do not
                # pause every cycle behind them.
                gc.freeze()
            self._owned = assigned
            self._restored = True
            log.info("ready", accounts=self.engine.account_count, partitions=len(assigned))

    async def _rebuild(
        self, assigned: frozenset[TopicPartition], committed: dict[TopicPartition, int]
    ) -> None:
        started = time.perf_counter()
        self.engine = Engine(self.instruments, self.settings.engine)
        self._account_partition = {}
        self._ignored_seen = {}
        self._positions = {}
        now_ms = self._clock_ms()
        if self._intake.prices:
            self.engine.apply([], list(self._intake.prices.values()), now_ms)
        changelog = await read_changelog(self.settings.kafka, self.settings.topics.state)
        resume = {
            tp: max(offset, changelog.checkpoints.get(tp, 0)) for tp, offset in committed.items()
        }
        replayed, total = 0, sum(resume.values())
        next_report = time.monotonic() + _PROGRESS_INTERVAL_S
        async with aclosing(read_history(self.settings.kafka, resume)) as batches:
            async for records in batches:
                # Rejected records were dead-lettered when first read.
                items, _ = self._intake.ledger_batch(records, self.engine, self._account_partition)
                self.engine.apply(items, [], now_ms)
                replayed += len(records)
                if time.monotonic() >= next_report:
                    next_report += _PROGRESS_INTERVAL_S
                    log.info(
                        "replaying ledger",
                        records=replayed,
                        of=total,
                        accounts=self.engine.account_count,
                    )
        self._ignored_seen = dict(self.engine.ignored)  # replayed, counted by the last run
        restore_states(self.engine, changelog.states)
        self._owned = assigned
        events = [e for e in judge_all(self.engine, now_ms) if self.owns(e.account)]
        outbound = self._event_records(events, now_ms)
        if outbound:
            await self._producer.send_batch(outbound)
            self._count_published(events, self._clock_ms())
        ahead = {tp: offset for tp, offset in resume.items() if offset > committed[tp]}
        if ahead:
            self._ledger.seek(ahead)
            await self._ledger.commit(ahead)
        self._positions = dict(resume)
        self._built = True
        log.info(
            "state rebuilt",
            partitions=sorted(tp.partition for tp in assigned),
            replayed=replayed,
            accounts=self.engine.account_count,
            events=len(events),
            seconds=round(time.perf_counter() - started, 3),
        )
