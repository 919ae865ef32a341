"""Fault injection against `liqmon run` processes on the real broker (issue 12's proof).

A fixed-seed ``liqmon simulate --scenario crash`` feeds a fault-free reference run; the
same records are then replayed at the same rate into fresh topics while faults are
injected: kill -9 at seeded random moments while input keeps flowing; the broker
stopped and started mid-stream; 1 -> 3 -> 1 instances under load; a second instance
joining while the first recovers. For every account the read_committed events must end
in the reference's final states, carry no transition twice, chain each event's
``previous_state`` to the last published state, and flag (``collapsed``) every event
that skips levels the reference went through. The counts are printed.

Size: ``LIQMON_FAULTS_ACCOUNTS`` / ``_DURATION`` / ``_KILLS`` / ``_RATE`` / ``_SEED``
(2,000 accounts, 30 s at 100 ticks/s, 10 kills by default; ``make soak`` raises them).
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from monitor.schema import Instrument
from streams.broker import LocalBroker
from streams.settings import KafkaSettings
from tests.integration.fault_injection import (
    HAS_EXACTLY_ONCE,
    HAS_INSTANCE_ID,
    Plan,
    RecordedInput,
    Replay,
    account_history,
    committed_events,
    drop_topics,
    example_instruments,
    fresh_topics,
    kill_moments,
    new_process,
    read_input,
    run_simulate,
    settle,
    wait_played,
)
from tests.integration.fault_verdict import Verdict, compare, failures
from tests.integration.liqmon_process import LiqmonProcess
from tests.integration.monitor_harness import MonitorHarness

pytestmark = pytest.mark.kafka

#: How long the broker stays down (the fault itself, not a wait for anything).
BROKER_OUTAGE_S = 4.0
SETTLE_S = 120.0


@dataclass(frozen=True)
class Reference:
    plan: Plan
    instruments: list[Instrument]
    data: RecordedInput
    events: list[dict[str, Any]]


@pytest.fixture(scope="module")
async def reference(kafka_settings: KafkaSettings) -> AsyncIterator[Reference]:
    """The fault-free run: one `liqmon run`, fed by `liqmon simulate` itself."""
    plan = Plan()
    instruments = example_instruments()
    topics = await fresh_topics(kafka_settings, "reference")
    try:
        async with MonitorHarness(kafka_settings, topics, f"fi-ref-{uuid.uuid4().hex[:8]}") as h:
            proc = new_process(h, "ref", instruments)
            try:
                await proc.start()
                await run_simulate(h, plan)
                data = await read_input(h, len(instruments), plan.rate)
                expected = len(instruments) + int(plan.rate * plan.duration_s + 1e-9)
                assert data.ticks == expected, f"recorded {data.ticks} ticks of {expected}"
                assert len(data.accounts) == plan.accounts
                done, missing = await settle(h, [proc], data.ticks, SETTLE_S)
                assert done, f"the reference run did not finish: {missing}\n{proc.tail()}"
                events = await committed_events(kafka_settings, topics.margin_events)
            finally:
                await proc.close()
        assert any(e["type"] == "liquidation" for e in events), "the crash liquidated no one"
        yield Reference(plan, instruments, data, events)
    finally:
        await drop_topics(kafka_settings, topics)


def report(capsys: pytest.CaptureFixture[str], name: str, verdict: Verdict, **counts: Any) -> None:
    """The counts of a run, shown even when pytest captures output."""
    features = f"exactly_once setting {HAS_EXACTLY_ONCE}, instance_id setting {HAS_INSTANCE_ID}"
    extra = ", ".join(f"{key} {value}" for key, value in counts.items())
    with capsys.disabled():
        print(f"\n[fault-injection] {name}: {extra}; {verdict.summary()}; {features}")


def local_broker(kafka: KafkaSettings) -> LocalBroker:
    host, _, port = kafka.bootstrap_servers.split(",")[0].strip().rpartition(":")
    assert host in {"127.0.0.1", "localhost"}, (
        f"the broker-restart fault needs the local broker, not {kafka.bootstrap_servers}"
    )
    return LocalBroker(Path(__file__).resolve().parents[2], port=int(port))


async def test_kill_9_at_random_moments_while_input_keeps_flowing(
    reference: Reference, kafka_settings: KafkaSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    plan, data = reference.plan, reference.data
    topics = await fresh_topics(kafka_settings, "kill9")
    kills = while_ready = 0
    killed_at: list[int] = []
    task: asyncio.Task[None] | None = None
    try:
        async with MonitorHarness(kafka_settings, topics, f"fi-kill-{uuid.uuid4().hex[:8]}") as h:
            proc = new_process(h, "a", reference.instruments)
            try:
                await proc.start()
                replay = Replay(h.producer, topics, data)
                task = asyncio.create_task(replay.run())
                for moment in kill_moments(plan, plan.seed):
                    await wait_played(replay, task, moment)
                    if task.done():
                        break
                    status, _ = await proc.readyz()
                    while_ready += status == 200
                    await proc.stop(kill=True)
                    kills += 1
                    killed_at.append(time.time_ns() // 1_000_000)
                    await proc.spawn()
                await task
                await proc.wait_ready(SETTLE_S)
                done, missing = await settle(h, [proc], data.ticks, SETTLE_S)
                events = await committed_events(kafka_settings, topics.margin_events)
            finally:
                if task is not None and not task.done():
                    task.cancel()
                await proc.close()
    finally:
        await drop_topics(kafka_settings, topics)
    verdict = compare(reference.events, events, data.accounts)
    report(capsys, "kill -9", verdict, kills=kills, kills_while_ready=while_ready)
    assert kills >= plan.kills, f"only {kills} kills happened while input flowed"
    assert done, f"the fault run did not finish: {missing}"
    assert not failures(verdict), "\n".join([*failures(verdict), f"killed at {killed_at} (ms)"])


async def test_broker_restart_scaling_and_a_rebalance_during_recovery(
    reference: Reference, kafka_settings: KafkaSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    plan, data = reference.plan, reference.data
    broker = local_broker(kafka_settings)
    topics = await fresh_topics(kafka_settings, "broker")
    stream_s = plan.duration_s
    task: asyncio.Task[None] | None = None
    procs: list[LiqmonProcess] = []
    recovery_kills = 0
    timeline: list[str] = []
    history: list[str] = []

    def mark(what: str) -> None:
        timeline.append(f"{what} at {time.time_ns() // 1_000_000}")

    outage_s = 0.0
    try:
        async with MonitorHarness(kafka_settings, topics, f"fi-brk-{uuid.uuid4().hex[:8]}") as h:

            def process(name: str) -> LiqmonProcess:
                procs.append(new_process(h, name, reference.instruments))
                return procs[-1]

            try:
                a = process("a")
                await a.start()
                replay = Replay(h.producer, topics, data)
                task = asyncio.create_task(replay.run())

                # The broker goes down mid-stream and comes back; the publisher holds
                # its records meanwhile, as a venue's producer would.
                await wait_played(replay, task, stream_s * 0.15)
                paused_at = await replay.pause()
                try:
                    mark("broker stopped")
                    await asyncio.to_thread(broker.stop)
                    await asyncio.sleep(BROKER_OUTAGE_S)  # the outage itself
                    a.assert_running()
                finally:
                    await asyncio.to_thread(broker.start, timeout_s=180)
                    outage_s = time.monotonic() - paused_at
                    mark("broker back")
                    replay.resume(paused_at)
                a.assert_running()

                # 1 -> 3 -> 1 instances while ticks keep coming.
                await wait_played(replay, task, stream_s * 0.3)
                b, c = process("b"), process("c")
                mark("scaling to 3")
                await asyncio.gather(b.spawn(), c.spawn())
                await asyncio.gather(b.wait_ready(SETTLE_S), c.wait_ready(SETTLE_S))
                await wait_played(replay, task, stream_s * 0.5)
                mark("scaling to 1")
                codes = await asyncio.gather(b.stop(), c.stop())
                assert codes == [0, 0], f"SIGTERM exit codes {codes}\n{b.tail()}\n{c.tail()}"

                # kill -9, and a second instance joins while the restarted one recovers:
                # the restarted one is frozen (SIGSTOP) once past its prices and not yet
                # ready, until the second has asked to join, so the rebalance cannot miss it.
                await wait_played(replay, task, stream_s * 0.65)
                d = process("d")
                mark("kill -9 before the rebalance during recovery")
                recovery_kills = await rebalance_during_recovery(a, d)
                mark("both recovering")
                await asyncio.gather(a.wait_ready(SETTLE_S), d.wait_ready(SETTLE_S))

                await task
                done, missing = await settle(h, [a, d], data.ticks, SETTLE_S)
                events = await committed_events(kafka_settings, topics.margin_events)
                # Gaps and repeats are rare races: keep what the topics say of those
                # accounts, aborted records included, before the topics go.
                troubled = compare(reference.events, events, data.accounts).troubled
                if troubled:
                    history = await account_history(kafka_settings, topics, troubled)
            finally:
                if task is not None and not task.done():
                    task.cancel()
                for proc in procs:
                    await proc.close()
    finally:
        await asyncio.to_thread(broker.start, timeout_s=180)  # restored even on failure
        await drop_topics(kafka_settings, topics)
    verdict = compare(reference.events, events, data.accounts)
    report(
        capsys,
        "broker restart, 1->3->1, rebalance during recovery",
        verdict,
        broker_paused_s=round(outage_s, 1),
        kills_to_freeze_a_recovery=recovery_kills,
    )
    assert done, f"the fault run did not finish: {missing}"
    assert not failures(verdict), "\n".join(
        [*failures(verdict), "; ".join(timeline), "what the topics held:", *history]
    )


def past_prices(status: int, reason: str) -> bool:
    """Whether a ``/readyz`` answer says the instance has its prices (and so has asked the
    group for partitions, or is restoring them, or is ready)."""
    return status == 200 or (status == 503 and "prices" not in reason)


async def rebalance_during_recovery(
    first: LiqmonProcess, second: LiqmonProcess, attempts: int = 5
) -> int:
    """kill -9 ``first`` and restart it until it is caught recovering (past its prices, not
    ready); freeze it there while ``second`` starts and asks to join, then let it go on.
    Returns the kills it took."""
    for attempt in range(1, attempts + 1):
        await first.stop(kill=True)
        await first.spawn()
        deadline = time.monotonic() + SETTLE_S
        while True:
            first.assert_running()
            status, reason = await first.readyz()
            if status == 200 or past_prices(status, reason):
                break
            assert time.monotonic() < deadline, f"still {reason!r} after {SETTLE_S}s"
            await asyncio.sleep(0.005)
        if status == 200:
            continue  # recovered before it could be caught: try again
        assert first.process is not None
        first.process.send_signal(signal.SIGSTOP)
        try:
            await second.spawn()
            deadline = time.monotonic() + SETTLE_S
            while not past_prices(*await second.readyz()):
                second.assert_running()
                assert time.monotonic() < deadline, "the second instance never got its prices"
                await asyncio.sleep(0.02)
        finally:
            first.process.send_signal(signal.SIGCONT)
        return attempt
    raise AssertionError(f"never caught the restarted instance recovering in {attempts} kills")
