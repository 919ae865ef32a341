"""When the service starts a stress: when due, unless it is held back (``may_start``:
a snapshot is due or being written, and the two images of the book together were the
monitor's memory peak)."""

from __future__ import annotations

import asyncio
import time

import msgspec
import pytest

from monitor.config import Settings, SolvencySettings
from monitor.engine import Engine
from monitor.metrics import Metrics
from monitor.schema import PriceTick
from monitor.solvency_publisher import SolvencySchedule
from tests.property.test_engine_incremental import BASE_PRICE, CONFIG, INSTRUMENTS

pytestmark = pytest.mark.unit


async def test_a_due_stress_held_back_starts_once_it_may() -> None:
    settings = msgspec.structs.replace(Settings(), solvency=SolvencySettings(interval_s=0.001))
    engine = Engine(INSTRUMENTS, CONFIG)
    prices = [PriceTick(symbol=s, mark_price=p, ts=0) for s, p in BASE_PRICE.items()]
    engine.apply([], prices, 0)
    schedule = SolvencySchedule(settings, engine, Metrics(), "instance-0")
    try:
        deadline = time.monotonic() + 5
        while not schedule.due():
            assert time.monotonic() < deadline, "the stress never came due"
            await asyncio.sleep(0.001)
        for _ in range(3):
            assert schedule.take(engine, 0, may_start=False) == []
            assert not schedule.started
            assert not schedule.running
            assert schedule.due()  # still due
        schedule.take(engine, 0)
        assert schedule.started
        assert schedule.running
        await schedule.copied()
        while not schedule.due():  # the report is ready
            assert time.monotonic() < deadline, "the stress never finished"
            await asyncio.sleep(0.01)
        records = schedule.take(engine, 0, may_start=False)
        assert len(records) == 1
        assert schedule.took
        assert not schedule.running
    finally:
        await schedule.close()
