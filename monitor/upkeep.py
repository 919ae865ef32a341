"""What the service does between cycles: gauges, book-wide figures and the verify sweep.

None of it may stall the loop: consumer lag and the cheap gauges are read every second;
the book-wide figures (exposure, distance to liquidation) are computed in a worker
thread every ``service.book_metrics_interval_s``, stepping aside while a cycle runs, and
exported when done; the sweep that recomputes everything and compares it with the
incremental state (``Engine.verify_sweep``) starts every ``service.sweep_interval_s`` and
runs one slice between two cycles.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

import structlog

from monitor.dynamic import DynamicMargin
from monitor.engine import Engine, VerifySweep
from monitor.guards import PriceGuard
from monitor.metrics import Metrics
from monitor.observe import BookFigures, Observer
from streams import TopicPartition

__all__ = ["Upkeep"]

log = structlog.get_logger("liqmon.service")

_LAG_INTERVAL_S = 1.0

Lag = Callable[[], Awaitable[Mapping[TopicPartition, int]]]


class Upkeep:
    """The between-cycles work of one monitor (see the module's docstring)."""

    def __init__(
        self,
        metrics: Metrics,
        observer: Observer,
        *,
        sweep_interval_s: float,
        book_metrics_interval_s: float,
        lags: tuple[Lag, ...],
        clock_ms: Callable[[], int],
        step_aside: Callable[[], None] = lambda: None,
    ) -> None:
        """``step_aside``: called by the book figures' worker between its passes and
        blocks of rows; it waits there while a cycle runs (``CycleGate.step_aside``)."""
        self._metrics = metrics
        self._step_aside = step_aside
        self._observer = observer
        self._sweep_interval_s = sweep_interval_s
        self._book_interval_s = book_metrics_interval_s
        self._lags = lags
        self._clock_ms = clock_ms
        self._next_gauges = self._next_book = 0.0
        self._next_sweep = time.monotonic() + sweep_interval_s
        self._figures: asyncio.Future[BookFigures] | None = None
        self._verify: VerifySweep | None = None  # the consistency sweep under way

    async def run(self, engine: Engine, dynamic: DynamicMargin, guard: PriceGuard) -> None:
        """Whatever is due now, for the book of ``engine``."""
        now = time.monotonic()
        if now >= self._next_gauges:
            self._next_gauges = now + _LAG_INTERVAL_S
            await self._update_gauges(engine, dynamic, guard)
        if now >= self._next_book and (self._figures is None or self._figures.done()):
            self._next_book = now + self._book_interval_s
            self._figures = self._book_figures(engine)
        if now >= self._next_sweep and self._verify is None:
            self._next_sweep = now + self._sweep_interval_s
            self._verify = engine.verify_sweep()
        self._sweep(engine)

    async def close(self) -> None:
        """Let book figures being computed finish (a thread: it cannot be cancelled)."""
        if self._figures is not None:
            await asyncio.gather(self._figures, return_exceptions=True)

    async def _update_gauges(
        self, engine: Engine, dynamic: DynamicMargin, guard: PriceGuard
    ) -> None:
        self._observer.book(engine, dynamic, guard, self._clock_ms())
        for lag in self._lags:
            for tp, behind in (await lag()).items():
                self._metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(behind)

    def _book_figures(self, engine: Engine) -> asyncio.Future[BookFigures]:
        """Compute the book-wide gauges in a worker thread (cycles go on meanwhile; it
        steps aside while one runs) and export them when done; a pass that fails (it
        raced a cycle that grew the book's arrays) is logged and the next one tries
        again."""
        computing = asyncio.ensure_future(
            asyncio.to_thread(Observer.book_figures, engine, self._step_aside)
        )

        def export(done: asyncio.Future[BookFigures]) -> None:
            if done.cancelled():
                return
            failure = done.exception()
            if failure is not None:
                log.debug("book gauges skipped", error=repr(failure))
            else:
                self._observer.book_figures_done(done.result())

        computing.add_done_callback(export)
        return computing

    def _sweep(self, engine: Engine) -> None:
        """One slice of the running sweep, if any (a slice between cycles: a sweep
        never stalls the loop; ``Engine.verify_sweep``)."""
        sweep = self._verify
        if sweep is None:
            return
        if sweep.engine is not engine:  # the book was rebuilt: start again later
            self._verify = None
            return
        if not sweep.step():
            return
        self._verify = None
        self._metrics.sweeps.inc()
        problems = sweep.problems
        if problems:
            self._metrics.sweep_mismatches.inc(len(problems))
            log.error("full sweep disagrees with incremental state", problems=problems)
