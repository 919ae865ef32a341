"""When and how the service stresses its book: every ``solvency.interval_s``, off the loop.

Inside a cycle (under the cycle lock) :meth:`SolvencySchedule.take` starts copying what
the stress needs (:class:`monitor.solvency.BookCopier`: one fused pass into kept
buffers, a kernel that releases the GIL) in a thread, while the cycle waits for its
commit; the cycle waits for the copy too (:meth:`SolvencySchedule.copied`) before the
book may change again. The report is computed in a worker thread at the lowest CPU
priority (:func:`lower_priority`); the event loop goes on judging ticks while numba
kernels that release the GIL compute it, stepping aside while a cycle runs
(:attr:`SolvencySchedule.gate`, which the service closes for each whole cycle, its
commit included). A later cycle
picks the finished report up: its record joins that cycle's transaction for the
``solvency`` topic, its figures go to the metrics, and the accounts' ADL quantiles are
attached to the margin events from then on (``MarginEvent.adl_quantile``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import msgspec
import numpy as np
import structlog
from numpy.typing import NDArray

from monitor.config import Settings
from monitor.engine import Engine
from monitor.errors import ConfigError, InputError
from monitor.metrics import Metrics
from monitor.schema import MarginEvent, SolvencyReport
from monitor.solvency import BookCopier, BookCopy, CycleGate, Stresser, state_of, warm_up
from streams import OutboundRecord

__all__ = ["SolvencySchedule", "fund_value", "lower_priority"]

log = structlog.get_logger("liqmon.solvency")

_Result = tuple[SolvencyReport, NDArray[np.float64], float]


def fund_value(engine: Engine, fund: dict[str, float]) -> float:
    """The insurance fund valued at each asset's price now (valuation asset)."""
    assets = engine.book.assets
    return sum(amount * float(assets.value[assets.index[a]]) for a, amount in fund.items())


def lower_priority() -> None:
    """Run this worker thread at the lowest CPU priority (Linux: per thread), so on a
    busy host the event loop's cycles, and the broker beside it, win the cores over the
    stress: nice 19, then the ``SCHED_IDLE`` policy, which runs the thread only on a core
    nothing else wants and lets any other thread that wakes take the core at once (at
    nice 19 alone a waking thread could wait for the stress's time slice, a few ms, at
    every wake-up). Measured end to end at a million accounts: p99 tick to publish at
    100,000 ticks/s 50-67 ms in three runs, against 77 in one at nice 19 alone
    (docs/operations.md)."""
    native_id = threading.get_native_id()
    with contextlib.suppress(AttributeError, OSError):  # not Linux: normal priority
        os.setpriority(os.PRIO_PROCESS, native_id, 19)
    with contextlib.suppress(AttributeError, OSError):  # no SCHED_IDLE: nice 19 only
        os.sched_setscheduler(native_id, os.SCHED_IDLE, os.sched_param(0))


class SolvencySchedule:
    """The periodic solvency report of one monitor instance."""

    def __init__(self, settings: Settings, engine: Engine, metrics: Metrics, key: str) -> None:
        solvency = settings.solvency
        self._interval_s = solvency.interval_s
        self._topic = settings.topics.solvency
        self._fund = settings.service.insurance_fund
        self._metrics = metrics
        self._key = key.encode()
        bases = sorted({i.base for i in engine.book.instruments})
        try:
            self._stresser = Stresser(
                bases,
                solvency.scenarios,
                history_file=solvency.history_file,
                group_separator=solvency.group_separator,
                top=solvency.top,
                report_accounts=solvency.report_accounts,
                queue_length=solvency.adl_queue_length,
            )
        except InputError as exc:
            raise ConfigError(f"solvency.history_file: {exc}") from None
        self._next = time.monotonic() + self._interval_s
        self._task: asyncio.Future[_Result] | None = None
        self._copying: asyncio.Future[BookCopy] | None = None  # started by this cycle
        self._engine: Engine | None = None  # the engine the running stress copied
        self._quantiles: NDArray[np.float64] = np.zeros(0)
        self._quantile_engine: Engine | None = None
        self._encode = msgspec.json.Encoder().encode
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="liqmon-solvency", initializer=lower_priority
        )
        self._copier = BookCopier()
        #: Closed by the service while a cycle computes: the stress steps aside.
        self.gate = CycleGate()
        if self.enabled:  # compile the kernels in the worker, before the first stress
            self._executor.submit(warm_up)
        self.last: SolvencyReport | None = None
        # What the last take() did, for the cycle record (``CycleInput``): took up a
        # finished report's quantiles, started a stress of the book.
        self.took = False
        self.started = False

    @property
    def enabled(self) -> bool:
        return self._interval_s > 0

    def due(self) -> bool:
        """Whether a cycle should run for the schedule: a report is ready or one is due."""
        if not self.enabled:
            return False
        if self._task is not None:
            return self._task.done()
        return time.monotonic() >= self._next

    @property
    def running(self) -> bool:
        """Whether a stress has started whose report no cycle has taken up yet."""
        return self._task is not None

    def take(self, engine: Engine, now_ms: int, *, may_start: bool = True) -> list[OutboundRecord]:
        """The record of a finished report (if any); start the next stress when due and
        ``may_start`` (the service holds a stress back while a snapshot is due or being
        written: see ``Snapshots.take``)."""
        if not self.enabled:
            return []
        records: list[OutboundRecord] = []
        self.took = self.started = False
        if self._task is not None and self._task.done():
            task, self._task = self._task, None
            try:
                report, quantiles, seconds = task.result()
            except Exception:  # a failed report must not stop the monitor
                log.exception("solvency report failed")
            else:
                report = msgspec.structs.replace(report, seconds=seconds)
                records.append(OutboundRecord(self._topic, self._key, self._encode(report)))
                self._observe(report, seconds)
                self._quantiles, self._quantile_engine = quantiles, self._engine
                self.last = report
                self.took = True
        if self._task is None and may_start and time.monotonic() >= self._next:
            self._next = time.monotonic() + self._interval_s
            self._copying = asyncio.ensure_future(asyncio.to_thread(self._copier.take, engine))
            self._engine = engine
            fund = fund_value(engine, self._fund)
            self._task = asyncio.ensure_future(self._stress(self._copying, fund, now_ms))
            self.started = True
        return records

    async def prepare(self, engine: Engine) -> None:
        """Copy a freshly built book once, in a thread, to fault in the copy's kept buffers
        (about 0.2 s at a million accounts) while the monitor is not yet ready, rather
        than in the cycle of the first stress."""
        if self.enabled:
            await asyncio.to_thread(self._copier.take, engine)

    async def copied(self) -> None:
        """Wait until the copy of the book a stress started this cycle is taken: the
        cycle's book must not change before (a cycle awaits this after its commit, so
        the copy runs while the commit waits on the broker)."""
        copying, self._copying = self._copying, None
        if copying is not None:
            await asyncio.gather(copying, return_exceptions=True)  # its failure: the task's

    async def _stress(self, copying: asyncio.Future[BookCopy], fund: float, ts: int) -> _Result:
        copied = await copying
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._compute, copied, fund, ts)

    def _compute(self, copied: BookCopy, fund: float, ts: int) -> _Result:
        started = time.perf_counter()
        gate = self.gate
        state = state_of(copied, gate=gate)
        report = self._stresser.report(state, fund, ts, gate=gate)
        quantiles = self._stresser.quantiles(state, gate=gate)
        return report, quantiles, time.perf_counter() - started

    def with_quantiles(self, engine: Engine, events: list[MarginEvent]) -> list[MarginEvent]:
        """``events`` with each account's ADL quantile from the last report."""
        if engine is not self._quantile_engine or not events:
            return events
        index, quantiles = engine.book.account_index, self._quantiles
        found = []
        for event in events:
            ix = index.get(event.account)
            q = float(quantiles[ix]) if ix is not None and ix < quantiles.shape[0] else math.nan
            found.append(event if math.isnan(q) else msgspec.structs.replace(event, adl_quantile=q))
        return found

    def _observe(self, report: SolvencyReport, seconds: float) -> None:
        m = self._metrics
        m.solvency_reports.inc()
        m.solvency_duration.set(seconds)
        m.stress_cover2.set(report.cover2)
        for result in report.scenarios:
            m.stress_bad_debt.labels(result.scenario).set(result.bad_debt)
            m.stress_bankrupt_accounts.labels(result.scenario).set(result.bankrupt_accounts)
        m.adl_shortfall.clear()
        for queue in report.adl_candidates:
            m.adl_shortfall.labels(queue.symbol, queue.side).set(queue.shortfall)
        log.info(
            "solvency report",
            worst=report.worst_scenario,
            cover2=round(report.cover2, 2),
            seconds=round(seconds, 3),
        )

    async def close(self) -> None:
        """Wait for a running stress to finish (its result is dropped)."""
        await self.copied()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._executor.shutdown(wait=False)
