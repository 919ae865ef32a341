"""Transactions, stable transition ids and fast takeover, with `liqmon run` as processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from monitor.schema import MarginEvent
from tests.integration.liqmon_process import LiqmonProcess, judges_a_normal_account
from tests.integration.monitor_harness import MonitorHarness, btc, now_ms

pytestmark = pytest.mark.kafka


@pytest.fixture
async def procs(harness: MonitorHarness) -> AsyncIterator[list[LiqmonProcess]]:
    made: list[LiqmonProcess] = []
    yield made
    for process in made:
        await process.close()


def assert_clean_chains(events: list[MarginEvent]) -> None:
    """Each id once; per unit, sequences 1, 2, ... and each previous state the last state."""
    ids = [e.event_id for e in events]
    assert len(ids) == len(set(ids)), "an event was published twice"
    last: dict[tuple[str, str | None], MarginEvent] = {}
    for event in events:
        unit = (event.account, event.symbol)
        before = last.get(unit)
        assert event.previous_state == (before.state if before else "healthy"), event
        assert event.sequence == (before.sequence + 1 if before else 1), event
        last[unit] = event


async def test_a_static_member_killed_mid_stream_resumes_its_partitions_and_numbering(
    harness: MonitorHarness, procs: list[LiqmonProcess]
) -> None:
    h = harness
    await h.prices(btc(100.0, now_ms()))
    proc = LiqmonProcess(h, instance_id="pod-0", session_timeout_ms=30_000)
    procs.append(proc)
    await proc.start()
    await judges_a_normal_account(h, proc, "n1", 100.0)
    await proc.stop(kill=True)
    started = time.monotonic()
    # With a 30 s session timeout a dynamic member would wait for the dead one to expire;
    # the static member takes its partitions back at once.
    await proc.start(ready_within_s=20)
    print(f"ready {time.monotonic() - started:.1f}s after kill -9 (session timeout 30 s)")
    await judges_a_normal_account(h, proc, "n2", 89.0)
    events = await h.events()
    assert_clean_chains(events)
    # n1 goes bankrupt when n2's fall takes the price on down.
    assert [e.type for e in events if e.account == "n1"] == [
        "margin_call",
        "liquidation",
        "bankruptcy",
    ]


async def test_a_second_process_with_the_same_instance_id_fences_the_first(
    harness: MonitorHarness, procs: list[LiqmonProcess]
) -> None:
    h = harness
    await h.prices(btc(100.0, now_ms()))
    first = LiqmonProcess(h, instance_id="pod-0")
    second = LiqmonProcess(h, instance_id="pod-0")
    procs.extend([first, second])
    await first.start()
    await second.start()
    deadline = time.monotonic() + 60
    while first.process is not None and first.process.returncode is None:
        await h.prices(btc(100.0, now_ms()))  # a cycle makes the zombie try to commit
        assert time.monotonic() < deadline, "the older process was not fenced"
        await asyncio.sleep(0.2)
    assert first.process is not None
    assert first.process.returncode == 1
    last_line = first.tail(1)
    assert "liqmon: error:" in last_line
    assert "pod-0" in last_line or "fenced" in last_line or "taken over" in last_line
    await judges_a_normal_account(h, second, "n1", 100.0)
    assert_clean_chains(await h.events())
