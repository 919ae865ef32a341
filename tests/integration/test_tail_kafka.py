"""`liqmon tail` against the real broker: events produced with a `type` header are printed."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import msgspec
import pytest

from monitor.schema import MarginEvent
from monitor.tail import TailFilter, tail_events
from streams import OutboundRecord, Producer
from streams.settings import KafkaSettings, TopicSettings

pytestmark = pytest.mark.kafka

DEADLINE_S = 60.0


def _event(n: int, type_: str, account: str) -> MarginEvent:
    state = {"margin_call": "margin_call", "liquidation": "liquidation"}.get(type_, "healthy")
    return msgspec.convert(
        {
            "event_id": f"ev-{n}",
            "type": type_,
            "account": account,
            "state": state,
            "previous_state": "healthy" if type_ == "margin_call" else "margin_call",
            "equity": 1000.0 + n,
            "initial_margin": 1200.0,
            "maintenance_margin": 600.0,
            "margin_ratio": 0.6,
            "trigger": "price",
            "trigger_ts": 1_732_000_000_000 + n,
            "detected_ts": 1_732_000_000_500 + n,
        },
        MarginEvent,
    )


EVENTS = [
    _event(0, "margin_call", "acct-1"),
    _event(1, "liquidation", "acct-1"),
    _event(2, "margin_call", "acct-2"),
    _event(3, "liquidation", "acct-2"),
    _event(4, "margin_call_cleared", "acct-3"),
]


async def _produce(
    kafka: KafkaSettings, topic: str, events: Sequence[MarginEvent], junk: bool = False
) -> None:
    records = [
        OutboundRecord(
            topic, e.account.encode(), msgspec.json.encode(e), [("type", e.type.encode())]
        )
        for e in events
    ]
    if junk:
        records.insert(0, OutboundRecord(topic, b"acct-1", b"not an event", []))
    async with Producer(kafka) as producer:
        await producer.send_batch(records)


def _env(kafka: KafkaSettings, topics: TopicSettings) -> dict[str, str]:
    return {
        **os.environ,
        "LIQMON_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "LIQMON_TOPICS__MARGIN_EVENTS": topics.margin_events,
    }


@asynccontextmanager
async def _tail(
    kafka: KafkaSettings, topics: TopicSettings, *args: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "tail",
        *args,
        env=_env(kafka, topics),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _lines(stream: asyncio.StreamReader | None, count: int) -> list[str]:
    assert stream is not None
    lines = []
    async with asyncio.timeout(DEADLINE_S):
        for _ in range(count):
            lines.append((await stream.readline()).decode().rstrip("\n"))
    return lines


async def test_tail_prints_every_event_from_the_beginning(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    await _produce(kafka_settings, topics.margin_events, EVENTS)
    async with _tail(kafka_settings, topics, "--from-beginning", "--max-events", "5") as process:
        stdout, stderr = await asyncio.wait_for(process.communicate(), DEADLINE_S)
    assert process.returncode == 0, stderr.decode()
    lines = stdout.decode().splitlines()
    assert len(lines) == 5
    for event in EVENTS:
        assert any(event.type in line and event.account in line for line in lines)
    assert all("equity=" in line and "trigger=price" in line for line in lines)


async def test_tail_filters_by_type_and_account(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    await _produce(kafka_settings, topics.margin_events, EVENTS)
    args = ("--from-beginning", "--json", "--type", "liquidation", "--type", "margin_call")
    async with _tail(kafka_settings, topics, *args, "--account", "acct-2") as process:
        lines = await _lines(process.stdout, 2)
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), DEADLINE_S)
    assert process.returncode == 0, stderr.decode()
    shown = [msgspec.json.decode(line, type=MarginEvent) for line in lines]
    assert shown == [EVENTS[2], EVENTS[3]]


async def test_tail_follows_new_events_and_exits_cleanly_on_ctrl_c(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    await _produce(kafka_settings, topics.margin_events, EVENTS[:2])  # old: not shown
    async with _tail(kafka_settings, topics, "--type", "liquidation") as process:
        assert process.stderr is not None
        async with asyncio.timeout(DEADLINE_S):
            ready = (await process.stderr.readline()).decode()
        assert ready.startswith(f"tail: following {topics.margin_events} ")
        await _produce(kafka_settings, topics.margin_events, EVENTS[2:])
        [line] = await _lines(process.stdout, 1)
        process.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(process.communicate(), DEADLINE_S)
    assert process.returncode == 0
    assert "liquidation" in line
    assert "acct-2" in line
    assert stdout == b""
    assert b"Traceback" not in stderr


async def test_tail_skips_records_that_are_not_events(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    await _produce(kafka_settings, topics.margin_events, EVENTS[:1], junk=True)
    printed: list[str] = []
    skipped: list[int] = []
    count = await asyncio.wait_for(
        tail_events(
            kafka_settings,
            topics.margin_events,
            printed.append,
            from_beginning=True,
            max_events=1,
            on_skip=lambda record, _reason: skipped.append(record.offset),
        ),
        DEADLINE_S,
    )
    assert count == 1
    assert skipped == [0]
    assert "margin_call" in printed[0]


async def test_tail_events_with_a_filter_returns_only_matches(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    await _produce(kafka_settings, topics.margin_events, EVENTS)
    printed: list[str] = []
    await asyncio.wait_for(
        tail_events(
            kafka_settings,
            topics.margin_events,
            printed.append,
            wanted=TailFilter(types=frozenset({"margin_call_cleared"})),
            as_json=True,
            from_beginning=True,
            max_events=1,
        ),
        DEADLINE_S,
    )
    assert [msgspec.json.decode(p, type=MarginEvent) for p in printed] == [EVENTS[4]]
