"""`liqmon replay --compare` against a real monitor's output: a simulated crash through
`liqmon run`, then the replay of its recorded input finds zero differences, and one
altered event on margin-events is reported with a non-zero exit."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from monitor.instruments import load_instrument_file
from monitor.replay._kafka import offset_ranges, read_state
from streams import OutboundRecord, Producer
from streams.settings import client_kwargs
from tests.integration.liqmon_process import LiqmonProcess
from tests.integration.monitor_harness import MonitorHarness

pytestmark = pytest.mark.kafka

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "instruments.example.json"
# The demo's solvency schedule (ADL quantiles on events), fast, and dynamic margin on
# short bars (margin_parameters events, rescaled rates).
ENV = {
    "LIQMON_SERVICE__INSURANCE_FUND": '{"USDT": 1000000}',
    "LIQMON_SOLVENCY__INTERVAL_S": "0.5",
    "LIQMON_DYNAMIC__BAR_S": "0.2",
    "LIQMON_DYNAMIC__EWMA_WARMUP": "5",
    "LIQMON_DYNAMIC__MARGIN": '{"BTCUSDT": {"reference_vol": 1.0, "floor": 1.0, "cap": 3.0, '
    '"max_change_per_hour": 5000.0}}',
}


async def liqmon(env: dict[str, str], *args: str, timeout_s: float = 180) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=timeout_s)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
async def recorded_session(harness: MonitorHarness) -> AsyncIterator[dict[str, str]]:
    """A crash simulated through `liqmon run`, the monitor stopped once it read everything."""
    h = harness
    proc = LiqmonProcess(h, load_instrument_file(EXAMPLE).instruments, env=ENV)
    try:
        await proc.start()
        yield await _session(h, proc)
    finally:
        await proc.close()


async def _session(h: MonitorHarness, proc: LiqmonProcess) -> dict[str, str]:
    env = proc.env()
    code, _, err = await liqmon(
        env,
        "simulate",
        "--instruments",
        str(EXAMPLE),
        "--accounts",
        "300",
        "--scenario",
        "crash",
        "--crash-at",
        "2",
        "--rate",
        "1500",
        "--duration",
        "6",
        "--seed",
        "11",
        "--quiet",
    )
    assert code == 0, err
    ends = await offset_ranges(h.kafka, (h.topics.prices, h.topics.fills))
    for topic in (h.topics.prices, h.topics.fills):
        total = sum(end for tp, (_, end) in ends.items() if tp.topic == topic)
        await proc.wait_metric(
            f'liqmon_records_consumed_total{{topic="{topic}"}}',
            lambda value, total=total: value >= total,
            f"{topic} read",
            timeout_s=90,
        )
    assert await proc.stop() == 0, proc.tail()
    return env


async def test_replay_of_a_recorded_session_matches_margin_events_exactly(
    recorded_session: dict[str, str], harness: MonitorHarness
) -> None:
    env = recorded_session
    events = await harness.events()
    assert len(events) > 50, "the crash must put accounts in trouble"
    assert any(e.adl_quantile is not None for e in events), "solvency quantiles shown"
    parameters = await harness.parameters()
    assert parameters, "dynamic margin changed rates"
    args = ["replay", "--instruments", str(EXAMPLE), "--compare", "--quiet"]
    code, out, err = await liqmon(env, *args)
    assert code == 0, out + err
    assert "recorded cycles of run" in out
    summary = out.strip().splitlines()[-1]
    published = len(events) + len(parameters)
    assert summary.endswith(
        f"identical: {published} replayed events, {published} published; "
        "0 missing, 0 extra, 0 different"
    ), summary

    # One published event altered: another copy of it with a different equity.
    original = events[len(events) // 2]
    altered = msgspec.structs.replace(original, equity=original.equity + 1.0)
    async with Producer(harness.kafka) as producer:
        await producer.send_batch(
            [
                OutboundRecord(
                    harness.topics.margin_events,
                    altered.account.encode(),
                    msgspec.json.encode(altered),
                    [("type", altered.type.encode())],
                )
            ]
        )
    code, out, err = await liqmon(env, *args)
    assert code == 1, out + err
    lines = out.strip().splitlines()
    assert lines[-1].endswith("0 missing, 0 extra, 1 different"), lines[-1]
    assert any(line.startswith(f"differs  {original.event_id} equity:") for line in lines)


async def test_replay_over_an_offset_range_and_bad_ranges(
    recorded_session: dict[str, str], harness: MonitorHarness
) -> None:
    env = recorded_session
    fills = harness.topics.fills
    ends = await offset_ranges(harness.kafka, (fills,))
    end = ends[next(iter(ends))][1]
    args = ["replay", "--instruments", str(EXAMPLE), "--compare", "--quiet"]
    code, out, err = await liqmon(env, *args, "--end-offset", f"{fills}:0={end // 2}")
    assert code == 0, out + err
    assert "events detected within the replayed cycles" in out

    code, out, err = await liqmon(env, *args, "--end-offset", f"{fills}:0={end + 5}")
    assert code == 2
    assert err.strip() == (
        f"liqmon: error: offset {end + 5} of {fills}[0] is out of range: the partition holds "
        f"offsets 0 to {end - 1}"
    )
    code, out, err = await liqmon(env, *args, "--own-batching")
    assert code in (0, 1), out + err
    assert "own batching (100 ms of record time per cycle)" in out.splitlines()[0]
    code, out, err = await liqmon({**env, "LIQMON_TOPICS__PRICES": "no-such-prices"}, *args)
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        "liqmon: error: topic 'no-such-prices' does not exist; create it first "
        "(liqmon topics create)"
    )


async def wait_committed(h: MonitorHarness, ends: dict[int, int], timeout_s: float = 90) -> None:
    """Until the group's committed offset of every fills partition is its end."""
    admin = AIOKafkaAdminClient(**client_kwargs(h.kafka))
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            offsets = await admin.list_consumer_group_offsets(h.group_id)
            committed = {
                tp.partition: o.offset for tp, o in offsets.items() if tp.topic == h.topics.fills
            }
            if all(committed.get(p, -1) >= end for p, end in ends.items()):
                return
            assert time.monotonic() < deadline, f"committed {committed}, ends {ends}"
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def test_each_run_of_a_monitor_killed_and_restarted_replays_identically(
    harness: MonitorHarness,
) -> None:
    h = harness
    proc = LiqmonProcess(h, load_instrument_file(EXAMPLE).instruments, env=ENV)
    try:
        await proc.start()
        env = proc.env()
        simulation = asyncio.ensure_future(
            liqmon(
                env,
                "simulate",
                "--instruments",
                str(EXAMPLE),
                "--accounts",
                "300",
                "--scenario",
                "crash",
                "--crash-at",
                "2",
                "--rate",
                "1000",
                "--duration",
                "8",
                "--seed",
                "13",
                "--quiet",
            )
        )
        # Kill -9 once the crash has started putting accounts in trouble.
        await proc.wait_metric(
            'liqmon_events_published_total{type="margin_call"}',
            lambda v: v > 0,
            "margin calls",
            timeout_s=60,
        )
        await proc.stop(kill=True)
        await proc.start()
        code, _, err = await simulation
        assert code == 0, err
        ends = await offset_ranges(h.kafka, (h.topics.prices, h.topics.fills))
        await wait_committed(
            h, {tp.partition: e for tp, (_, e) in ends.items() if tp.topic == h.topics.fills}
        )
        prices = sum(e for tp, (_, e) in ends.items() if tp.topic == h.topics.prices)
        await proc.wait_metric(
            f'liqmon_records_consumed_total{{topic="{h.topics.prices}"}}',
            lambda v: v >= prices,
            "the price table read",
            timeout_s=60,
        )
        assert await proc.stop() == 0, proc.tail()
    finally:
        await proc.close()
    runs = list((await read_state(h.kafka, h.topics.state)).runs)
    assert len(runs) == 2
    published = 0
    for number, run in enumerate(runs):
        args = ["replay", "--instruments", str(EXAMPLE), "--compare", "--quiet", "--run", run]
        code, out, err = await liqmon(env, *args)
        assert code == 0, out + err
        assert ("resumed from an earlier run's state" in out) == (number == 1)
        summary = out.strip().splitlines()[-1]
        assert summary.endswith("0 missing, 0 extra, 0 different"), summary
        published += int(summary.split("identical: ")[1].split(" ")[0])
    assert published > 50, "the crash must put accounts in trouble in the replayed runs"
