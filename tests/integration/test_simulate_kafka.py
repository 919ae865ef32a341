"""`liqmon simulate` against the real broker: what it publishes, and where."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import msgspec
import pytest

from monitor.instruments import load_instrument_file
from monitor.market import CrashSpec, MarketSpec, plan_accounts
from monitor.schema import Instrument, LedgerEvent, PriceTick
from monitor.simulate import SimulationTarget, run_simulation
from streams import InboundRecord, TableConsumer
from streams.errors import StreamsError
from streams.settings import KafkaSettings, TopicSettings

pytestmark = pytest.mark.kafka

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "instruments.example.json"
_decode_ledger = msgspec.json.Decoder(LedgerEvent).decode
_decode_tick = msgspec.json.Decoder(PriceTick).decode


def _market() -> tuple[list[Instrument], list[float]]:
    loaded = load_instrument_file(EXAMPLE)
    instruments = list(loaded.instruments)
    return instruments, [loaded.reference_prices[i.symbol] for i in instruments]


async def _read_exactly(
    kafka: KafkaSettings, topic: str, expected: int, timeout_s: float = 60.0
) -> list[InboundRecord]:
    """Every record of ``topic``, failing unless there are exactly ``expected``."""
    records: list[InboundRecord] = []
    deadline = time.monotonic() + timeout_s
    async with TableConsumer(kafka, topic=topic) as consumer:
        while len(records) < expected:
            assert time.monotonic() < deadline, f"{topic}: {len(records)} of {expected} records"
            records += await consumer.poll_batch(10_000, 200)
        assert sum((await consumer.lag()).values()) == 0
    assert len(records) == expected
    return records


def _env(kafka: KafkaSettings, topics: TopicSettings) -> dict[str, str]:
    return {
        **os.environ,
        "LIQMON_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "LIQMON_TOPICS__PRICES": topics.prices,
        "LIQMON_TOPICS__FILLS": topics.fills,
        "LIQMON_TOPICS__MARGIN_EVENTS": topics.margin_events,
        "LIQMON_TOPICS__STATE": topics.state,
        "LIQMON_TOPICS__DLQ": topics.dlq,
        "LIQMON_TOPICS__SOLVENCY": topics.solvency,
    }


async def test_simulation_publishes_the_ticks_and_every_ledger_record(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    instruments, start = _market()
    spec = MarketSpec(seed=3, accounts=200, step_s=len(instruments) / 2_000, crash=CrashSpec())
    target = SimulationTarget(topics.prices, topics.fills, rate=2_000, ticks=500)
    totals = await run_simulation(kafka_settings, instruments, start, spec, target)
    ledger_count = plan_accounts(instruments, start, spec).ledger_count
    assert (totals.ticks, totals.ledger) == (500, ledger_count)

    prices = await _read_exactly(kafka_settings, topics.prices, 500)
    ticks = [_decode_tick(r.value or b"") for r in prices]
    assert all(r.key == t.symbol.encode() for r, t in zip(prices, ticks, strict=True))
    assert [t.mark_price for t in ticks[: len(instruments)]] == start

    fills = await _read_exactly(kafka_settings, topics.fills, ledger_count)
    events = [_decode_ledger(r.value or b"") for r in fills]
    assert all(r.key == e.account.encode() for r, e in zip(fills, events, strict=True))
    assert len({e.account for e in events}) == 200


async def test_simulate_command_publishes_to_the_configured_topics(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "simulate",
        "--accounts",
        "30",
        "--instruments-count",
        "4",
        "--rate",
        "400",
        "--ticks",
        "100",
        "--seed",
        "9",
        "--quiet",
        env=_env(kafka_settings, topics),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode()
    assert stdout == stderr == b""
    instruments, start = _market()
    ledger = plan_accounts(instruments[:4], start[:4], MarketSpec(seed=9, accounts=30))
    await _read_exactly(kafka_settings, topics.prices, 100)
    await _read_exactly(kafka_settings, topics.fills, ledger.ledger_count)


async def test_simulate_command_reports_progress_on_stderr(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "simulate",
        "--accounts",
        "10",
        "--rate",
        "100",
        "--duration",
        "2.5",
        env=_env(kafka_settings, topics),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode()
    lines = stderr.decode().splitlines()
    assert any("ticks/s" in line and "fills" in line for line in lines)
    assert lines[-1].startswith("simulate: sent 260 ticks and ")


async def test_missing_topic_is_a_one_line_error(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    env = {**_env(kafka_settings, topics), "LIQMON_TOPICS__PRICES": topics.prices + "-absent"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "simulate",
        "--ticks",
        "20",
        "--quiet",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 1
    assert stderr.decode().splitlines() == [
        f"liqmon: error: topic '{topics.prices}-absent' does not exist; "
        "create it first (liqmon topics create)"
    ]


async def test_run_simulation_refuses_a_missing_topic(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    instruments, start = _market()
    target = SimulationTarget(topics.prices, topics.fills + "-absent", rate=10, ticks=10)
    with pytest.raises(StreamsError, match="does not exist"):
        await run_simulation(kafka_settings, instruments, start, MarketSpec(accounts=1), target)
