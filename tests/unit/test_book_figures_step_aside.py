"""The book-wide figures' worker steps aside while a cycle runs.

``Observer.book_figures`` runs in a worker thread beside the cycles every
``service.book_metrics_interval_s``; between its passes and blocks of rows it calls the
pause it is given (``CycleGate.step_aside``), so at a closed gate it waits and lets the
cycle have the cores, and finishes with the same figures once the gate opens.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from monitor.config import TopicSettings
from monitor.engine import Engine
from monitor.metrics import Metrics
from monitor.observe import Observer
from monitor.solvency import CycleGate
from monitor.upkeep import Upkeep
from tests.unit.test_engine_exposure import book

pytestmark = pytest.mark.unit


def test_the_figures_pause_between_their_passes_and_do_not_change() -> None:
    engine = book()
    pauses: list[int] = []
    paused = Observer.book_figures(engine, lambda: pauses.append(1))
    # states | a block of positions | two in exposure | a block of open interest
    assert len(pauses) == 5
    assert paused == Observer.book_figures(engine)
    assert paused.exposure.bad_debt == pytest.approx(10.0)


async def test_the_figures_worker_waits_at_a_closed_gate_until_it_opens() -> None:
    engine: Engine = book()
    gate = CycleGate()
    metrics = Metrics()
    upkeep = Upkeep(
        metrics,
        Observer(metrics, TopicSettings(), {}),
        sweep_interval_s=1e9,
        book_metrics_interval_s=1e9,
        lags=(),
        clock_ms=lambda: 0,
        step_aside=gate.step_aside,
    )
    gate.close()  # a cycle runs
    computing = upkeep._book_figures(engine)
    deadline = time.monotonic() + 10
    while gate.pauses == 0:  # the worker reached its first pause and waits there
        assert time.monotonic() < deadline, "the worker never stepped aside"
        await asyncio.sleep(0.005)
    assert not computing.done()
    gate.open()  # the cycle is done
    figures = await asyncio.wait_for(computing, 10)
    assert figures == Observer.book_figures(engine)
    assert gate.pauses == 1
    assert metrics.bad_debt_total._value.get() == pytest.approx(10.0)
