"""`liqmon run`: prices and ledger from Kafka, through the engine, margin events to Kafka.

The loop is short: poll both consumers, hand what came to the intake (decode, validate
once, screen prices), apply the good input to the engine, and give its output to the
:class:`~monitor.checkpoint.Checkpoint`, which commits events, changelog records, dead
letters and the consumed ledger offsets together (one Kafka transaction per cycle by
default). Data flows one way: loop -> intake -> engine -> checkpoint.

Start-up: resume the price guard and read the whole price table first (not ready
before), then, for the ledger partitions the group assigns, let
:class:`~monitor.recovery.Recovery` rebuild the book, and commit what it publishes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from typing import get_args

import structlog

from monitor import runtime
from monitor.changelog import (
    checkpoint_records,
    price_reference_records,
    prices_screened_records,
    volatility_records,
)
from monitor.clients import connect
from monitor.config import Settings
from monitor.cycle_log import CycleLog
from monitor.dynamic import DynamicMargin
from monitor.engine import SHAPE_REASONS, Engine, warm_up
from monitor.errors import ConfigError
from monitor.guards import HoldReason
from monitor.http import HealthServer
from monitor.intake import PRICE_CHUNK, PROCESSING_ERROR, TS_OUT_OF_RANGE, Intake, PricePoll
from monitor.metrics import Metrics
from monitor.observe import Observer
from monitor.partitions import AccountPartitions
from monitor.rebalancing import Rebalancing
from monitor.recovery import Recovery
from monitor.rescaling import Rescaling
from monitor.schema import (
    Instrument,
    LedgerEvent,
    MarginEventType,
)
from monitor.snapshots import Snapshots
from monitor.solvency_publisher import SolvencySchedule
from monitor.states import STATE_NAMES
from monitor.upkeep import Upkeep
from streams import (
    INVALID,
    MISSING_VALUE,
    TOO_LARGE,
    UNDECODABLE,
    InboundRecord,
    OutboundRecord,
    TopicPartition,
    lean_records_installed,
    next_offsets,
    topic_partitions,
)

__all__ = ["DLQ_REASONS", "Monitor"]

log = structlog.get_logger("liqmon.service")

#: Every reason a record can be dead-lettered for (metric labels are created up front).
DLQ_REASONS = tuple(
    sorted(
        {INVALID, MISSING_VALUE, TOO_LARGE, UNDECODABLE, PROCESSING_ERROR, TS_OUT_OF_RANGE}
        | set(SHAPE_REASONS)
    )
)
_IGNORE_REASONS = ("duplicate", "not_isolated_position", "insufficient_isolated_margin")


class Monitor(Rebalancing):
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
        unknown = sorted(set(settings.service.insurance_fund) - set(self.engine.book.assets.index))
        if unknown:
            raise ConfigError(
                f"service.insurance_fund holds {', '.join(unknown)}, which is neither the "
                "valuation asset nor a collateral asset; list it in engine.collateral"
            )
        self._clock_ms = clock_ms
        self.dynamic = DynamicMargin(self.instruments, settings.dynamic)
        service = settings.service
        self._intake = Intake(service, settings.topics.dlq, self.metrics)
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()
        self._owned: frozenset[TopicPartition] = frozenset()
        self._positions: dict[TopicPartition, int] = {}  # next ledger offset processed
        self._partitions = AccountPartitions()  # of the accounts of self.engine's book
        self._observer = Observer(self.metrics, settings.topics, settings.service.insurance_fund)
        self._restored = False  # ledger partitions assigned and their state rebuilt
        self._built = False  # the book has been built for some assignment
        self._cycles = CycleLog(settings.topics.state, enabled=service.record_cycles)
        self.metrics.initialise(
            topics=(settings.topics.prices, settings.topics.fills),
            ledger_types=[kind.__struct_config__.tag for kind in get_args(LedgerEvent)],
            ignore_reasons=_IGNORE_REASONS,
            event_types=get_args(MarginEventType),
            dlq_reasons=DLQ_REASONS,
            hold_reasons=get_args(HoldReason),
            states=STATE_NAMES,
        )
        for underlying in self.dynamic.underlyings:  # at 0 before the first change
            self.metrics.margin_parameter_changes.labels(underlying)
        self._next_guard_save = 0.0
        # Per prices partition, the next offset after the records cycles have screened
        # (saved with the guard: a restart dead-letters only what lies beyond).
        self._screened: dict[TopicPartition, int] = {}
        self._kernels: asyncio.Future[float] | None = None
        self._snapshots = Snapshots(
            settings.topics.state, service.snapshot_interval_s, self.metrics
        )
        self._solvency = SolvencySchedule(
            settings, self.engine, self.metrics, service.instance_id or service.group_id
        )
        # Read at scrape time, so /metrics and /readyz can never disagree.
        self.metrics.ready.set_function(lambda: 1.0 if self.readiness()[0] else 0.0)
        self.http = HealthServer(
            service.http_host, service.http_port, self.metrics.exposition, self.readiness
        )
        clients = connect(settings, on_assigned=self._on_assigned, on_revoked=self._on_revoked)
        self.transactional_id = clients.transactional_id
        self._producer, self._table, self._ledger = clients.producer, clients.table, clients.ledger
        self._checkpoint = clients.checkpoint
        self._rescaling = Rescaling(
            self.dynamic, self.metrics, self._checkpoint, settings.topics.fills
        )
        self._recovery = Recovery(
            settings, self.instruments, self._intake, self.metrics, clock_ms, self.dynamic
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
        partition = self._partitions.partition(self.engine.book, account)
        return partition is not None and (
            TopicPartition(self.settings.topics.fills, partition) in self._owned
        )

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
            stack.enter_context(runtime.tuned())  # few young collections (monitor.runtime)
            await self.http.start()
            stack.push_async_callback(self.http.stop)
            stack.push_async_callback(self._solvency.close)
            await self._producer.start()
            stack.push_async_callback(self._producer.stop)
            topics = self.settings.topics
            solvency = (topics.solvency,) if self._solvency.enabled else ()
            for topic in (topics.fills, topics.margin_events, topics.state, topics.dlq, *solvency):
                await topic_partitions(self.settings.kafka, topic)  # one-line error if missing
            await self._table.start()
            stack.push_async_callback(self._table.stop)
            log.info(
                "started",
                metrics_port=self.http.port,
                topics=self.settings.topics.names(),
                exactly_once=self.settings.service.exactly_once,
                transactional_id=self.transactional_id,
                # aiokafka's own records if this aiokafka cannot hand out lean ones (slower)
                lean_records=lean_records_installed(),
            )
            # Compile the fused kernels off the event loop while the prices catch up.
            self._kernels = asyncio.ensure_future(asyncio.to_thread(warm_up, _log_kernel_step))
            self._kernels.add_done_callback(_log_kernels)
            changelog = await self._recovery.read_changelog()
            self.dynamic.restore(changelog.volatility.values())
            self.engine.rescale(
                self.dynamic.scales(), {}, self._clock_ms(), self.dynamic.range_scales()
            )
            self._recovery.resume_prices(self.engine, changelog)
            await self._catch_up_prices()
            if self._stop.is_set():
                return
            await self._ledger.start()  # the first assignment restores state (_on_assigned)
            stack.push_async_callback(self._ledger.stop)
            await self._loop()
            # A graceful stop saves the guard's marks and screening progress up to now.
            self._checkpoint.add(self._cycles.flush())
            self._checkpoint.add(self._guard_records(force=True))
            await self._checkpoint.commit()
        log.info("stopped")

    async def _catch_up_prices(self) -> None:
        while not self._table.caught_up and not self._stop.is_set():
            prices = await self._poll_prices(200)
            if prices:
                now_ms = self._clock_ms()
                ticks, dead_letters = self._intake.price_batch(prices, self.engine, now_ms)
                self._note_screened(prices)
                self.engine.apply([], ticks, now_ms)  # no accounts yet: marks only
                self._rescaling.step(self.engine, ticks, now_ms, self._owned, self.owns)
                self._checkpoint.add(dead_letters)
                self._checkpoint.add(self._guard_records(force=bool(dead_letters)))
                self._checkpoint.add(
                    self._cycles.record("prices", now_ms, price_ends=prices.batch_ends())
                )
                await self._checkpoint.commit()
                self._observer.cycle(self.engine, prices.count, [], [], ticks, [], now_ms)
        log.info("prices caught up", instruments=len(self._intake.prices))

    async def _poll_prices(self, timeout_ms: int, prices: PricePoll | None = None) -> PricePoll:
        """Up to ``service.max_price_batch`` price records (counting those ``prices``
        already holds, which it adds to), waiting at most ``timeout_ms`` for the first:
        taken ``PRICE_CHUNK`` at a time and decoded as they come, so a backlog's cycle
        holds its ticks, not its Kafka records (``PricePoll``)."""
        most = self.settings.service.max_price_batch
        prices = prices if prices is not None else PricePoll()
        while prices.count < most:
            records = await self._table.poll_batch(
                min(PRICE_CHUNK, most - prices.count), timeout_ms if not prices else 0
            )
            if not records:
                break
            # Decoding is the cycles' work done ahead: a running stress steps aside.
            with self._solvency.gate.cycle():
                self._intake.take_prices(prices, records, self.engine, self._clock_ms())
            # A poll runs while a cycle awaits its commit: the commit's next step goes
            # between two chunks, not after a whole backlog (a chunk takes up to ~40 ms).
            await asyncio.sleep(0)
        return prices

    def _note_screened(self, prices: PricePoll) -> None:
        """The records of ``prices`` are screened (their dead letters join this cycle)."""
        topic = self.settings.topics.prices
        self._screened.update((TopicPartition(topic, p), end) for p, end in prices.ends.items())

    def _guard_records(self, *, force: bool) -> list[OutboundRecord]:
        """The price guard's changed references and how far prices were screened, when
        ``force`` (something was held or dead-lettered) or the save interval has passed."""
        now = time.monotonic()
        if not force and now < self._next_guard_save:
            return []
        self._next_guard_save = now + self.settings.service.guard_checkpoint_interval_s
        topic = self.settings.topics.state
        return [
            *price_reference_records(topic, self._intake.guard.take_changed()),
            *prices_screened_records(topic, self._screened),
            *volatility_records(topic, self.dynamic.states()),
        ]

    # ------------------------------------------------------------------ the loop

    async def _loop(self) -> None:
        service = self.settings.service
        price_poll: asyncio.Task[PricePoll] | None = None
        ledger_poll: asyncio.Task[list[InboundRecord]] | None = None
        stop_wait = asyncio.ensure_future(self._stop.wait())
        upkeep = Upkeep(
            self.metrics,
            self._observer,
            sweep_interval_s=service.sweep_interval_s,
            book_metrics_interval_s=service.book_metrics_interval_s,
            lags=(self._table.lag, self._ledger.lag),
            clock_ms=self._clock_ms,
            step_aside=self._solvency.gate.step_aside,
        )
        try:
            while not self._stop.is_set():
                # While a snapshot's copy is taken (a few cycles) the ledger waits and the
                # cycles follow each other at once; ticks go on (monitor.snapshots).
                copying = self._snapshots.copying(self._owned)
                if price_poll is None:
                    price_poll = asyncio.ensure_future(self._poll_prices(service.poll_timeout_ms))
                if ledger_poll is None and not copying:
                    ledger_poll = asyncio.ensure_future(
                        self._ledger.poll_batch(service.max_ledger_batch, service.poll_timeout_ms)
                    )
                waiting = [price_poll, stop_wait]
                if ledger_poll is not None and not (copying and ledger_poll.done()):
                    waiting.append(ledger_poll)
                await asyncio.wait(
                    waiting,
                    timeout=0 if copying else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                prices = PricePoll()
                if price_poll.done():
                    # With what was fetched since it ended, then the next poll at once: it
                    # decodes while this cycle waits for its commit, and the consumer,
                    # which fetches no more while records wait in its buffer, fetches on.
                    prices = await self._poll_prices(0, price_poll.result())
                    price_poll = asyncio.ensure_future(self._poll_prices(service.poll_timeout_ms))
                ledger: list[InboundRecord] = []
                if ledger_poll is not None and ledger_poll.done() and not copying:
                    ledger, ledger_poll = ledger_poll.result(), None
                solvency_due = self._restored and self._solvency.due()
                if prices or ledger or self._snapshots.due(self._owned) or solvency_due:
                    await self._cycle(prices, ledger)
                await upkeep.run(self.engine, self.dynamic, self._intake.guard)
        finally:
            stop_wait.cancel()
            polls = [task for task in (price_poll, ledger_poll) if task is not None]
            for task in polls:
                task.cancel()
            await asyncio.gather(*polls, stop_wait, upkeep.close(), return_exceptions=True)

    async def _cycle(self, prices: PricePoll, ledger: list[InboundRecord]) -> None:
        async with self._lock:
            # A running stress steps aside for the whole cycle, commit included: the commit's
            # round trips need the broker, which shares the cores (docs/solvency.md).
            with self._solvency.gate.cycle():
                await self._judge(prices, ledger)

    async def _judge(self, prices: PricePoll, ledger: list[InboundRecord]) -> None:
        """One cycle, under the cycle lock: judge the batch, write and commit what it
        produced in one transaction, then observe it."""
        started = time.perf_counter()
        now_ms = self._clock_ms()
        intake, checkpoint = self._intake, self._checkpoint
        held_before = intake.guard.held_count
        ticks, price_letters = intake.price_batch(prices, self.engine, now_ms)
        self._note_screened(prices)
        items, records, rejected = intake.ledger_batch(ledger, self.engine, self._partitions)
        output = self.engine.cycle(items, ticks, now_ms)
        self._partitions.settle(self.engine.book)
        events = [e for e in output.events if self.owns(e.account)]
        events = self._solvency.with_quantiles(self.engine, events)
        states = [s for s in output.states if self.owns(s.account)]
        rejected.extend(intake.failed(items, records, output.failures))
        checkpoint.add(price_letters)
        checkpoint.add(intake.dead_letters(rejected))
        checkpoint.add_events(events, states)
        rescaled = self._rescaling.step(self.engine, ticks, now_ms, self._owned, self.owns)
        events.extend(rescaled)
        guard_moved = bool(price_letters) or intake.guard.held_count != held_before
        guard_moved = guard_moved or bool(rescaled) or self.dynamic.moved
        checkpoint.add(self._guard_records(force=guard_moved))
        owned = self._owned
        consumed = {tp: o for tp, o in next_offsets(ledger).items() if tp in owned}
        checkpoint.add(checkpoint_records(self.settings.topics.state, consumed))
        # A snapshot's image and a stress's copy of the book are never alive together:
        # at 3M positions the one took about 40 MB and the other 50-85 MB above the
        # book, and at once they made the monitor's memory peak. A due snapshot goes
        # first, so stresses back to back cannot starve it.
        checkpoint.add(
            self._snapshots.take(
                self.engine,
                self._owned,
                self._partitions,
                {**self._positions, **consumed},
                now_ms,
                may_begin=not self._solvency.running,
            )
        )
        stressed = self._restored
        if stressed:
            snapshot_due = self._snapshots.due(self._owned)
            checkpoint.add(self._solvency.take(self.engine, now_ms, may_start=not snapshot_due))
        cycle = self._cycles.record(
            "cycle",
            now_ms,
            price_ends=prices.batch_ends(),
            ledger=ledger,
            stress_taken=stressed and self._solvency.took,
            stress_started=stressed and self._solvency.started,
        )
        # Alone, the cycle's record waits for the next write: no transaction for it.
        checkpoint.add(self._cycles.hold(cycle, alone=not (checkpoint.pending or consumed)))
        fence = {tp: o for tp, o in self._positions.items() if tp in owned}
        try:
            committed = await checkpoint.commit(consumed, fence=fence)
        finally:  # a stress started this cycle copies the book meanwhile
            await self._solvency.copied()
        if committed is None:
            # Nothing of this cycle was written, but the book applied its input: drop
            # ownership and rebuild from the log at the next assignment.
            self._built, self._restored, self._owned = False, False, frozenset()
            events = []
            # For replay: this cycle's record is lost with it; from here none is owned.
            checkpoint.add(self._cycles.record("revoke", now_ms))
        else:
            self._positions.update(committed)
        self._observer.cycle(
            self.engine, prices.count, ledger, items, ticks, events, self._clock_ms()
        )
        self.metrics.cycle_duration.observe(time.perf_counter() - started)


def _log_kernel_step(step: str, seconds: float) -> None:
    """Progress of compiling the kernels (from the warm-up thread)."""
    log.info("kernels compiling", compiled=step, seconds=round(seconds, 3))


def _log_kernels(compiling: asyncio.Future[float]) -> None:
    """Say how long compiling (or loading from the disk cache) the kernels took."""
    if compiling.cancelled():
        return
    failure = compiling.exception()
    if failure is not None:  # the first full recompute compiles, or fails the same way
        log.warning("kernels not compiled ahead", error=repr(failure))
    else:
        log.info("kernels ready", seconds=round(compiling.result(), 3))
