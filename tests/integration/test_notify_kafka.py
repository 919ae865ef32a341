"""`liqmon notify` as users run it: a process forwarding events to a webhook.

The events are published as the monitor publishes them (key = account, a `type` header).
All go to one account, hence one partition, so their order is the order of delivery.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest

from monitor.schema import MarginEvent
from streams import OutboundRecord, Producer
from streams.settings import KafkaSettings, TopicSettings
from tests.integration.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.kafka

ACCOUNT = "acct-7"


def event(event_id: str, kind: str) -> MarginEvent:
    state = {"margin_call": "margin_call", "liquidation": "liquidation"}.get(kind, "healthy")
    return MarginEvent(
        event_id=event_id,
        type=kind,  # type: ignore[arg-type]
        account=ACCOUNT,
        state=state,  # type: ignore[arg-type]
        previous_state="healthy",
        equity=950.0,
        initial_margin=1200.0,
        maintenance_margin=1000.0,
        margin_ratio=1000.0 / 950.0,
        trigger="price",
        trigger_ts=1_764_000_000_000,
        detected_ts=1_764_000_000_050,
    )


async def publish(kafka: KafkaSettings, topic: str, *events: MarginEvent) -> None:
    async with Producer(kafka) as producer:
        await producer.send_batch(
            OutboundRecord(
                topic, ACCOUNT.encode(), msgspec.json.encode(e), [("type", e.type.encode())]
            )
            for e in events
        )


class Notifier:
    """Starts and stops `liqmon notify` subprocesses on one group and webhook."""

    def __init__(self, kafka: KafkaSettings, topics: TopicSettings, url: str) -> None:
        self.env = {
            **os.environ,
            "LIQMON_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "LIQMON_TOPICS__MARGIN_EVENTS": topics.margin_events,
            "LIQMON_NOTIFY_URL": url,
            "LIQMON_LOG__FORMAT": "json",
        }
        self.group = f"g-notify-{uuid.uuid4().hex[:10]}"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor",
            "notify",
            "--group",
            self.group,
            "--from-beginning",
            "--type",
            "liquidation",
            "--type",
            "margin_call",
            "--retry-delay",
            "0.05",
            env=self.env,
            stderr=asyncio.subprocess.PIPE,
        )

    async def stop(self) -> bytes:
        """SIGTERM, then the exit code must be 0; returns stderr."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(self.process.communicate(), 30)
        assert self.process.returncode == 0, stderr.decode()[-2000:]
        return stderr

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as receiver:
        yield receiver


def ids(bodies: list[dict[str, str]]) -> list[str]:
    return [body["event_id"] for body in bodies]


async def test_notify_retries_a_failing_webhook_and_sends_nothing_twice_across_a_restart(
    kafka: KafkaSettings, topics: TopicSettings, webhook: WebhookReceiver
) -> None:
    notifier = Notifier(kafka, topics, webhook.url)
    webhook.fail_next = 2  # the first event is accepted at its third attempt
    await publish(
        kafka,
        topics.margin_events,
        event("e1", "liquidation"),
        event("e2", "margin_call_cleared"),  # a type not asked for
        event("e3", "margin_call"),
    )
    try:
        await notifier.start()
        await webhook.wait_for(lambda got: len(got) >= 2, "e1 and e3")
        first_run = await notifier.stop()
        assert ids(webhook.received) == ["e1", "e3"]
        assert webhook.attempts == 4
        assert first_run.count(b'"event":"webhook_retry"') == 2

        # While it is down: the monitor republishes e1 (same id, as after its own crash),
        # then a new liquidation.
        await publish(
            kafka, topics.margin_events, event("e1", "liquidation"), event("e4", "liquidation")
        )
        await notifier.start()
        await webhook.wait_for(lambda got: "e4" in ids(got), "e4 after the restart")
        await notifier.stop()
    finally:
        await notifier.kill()
    assert ids(webhook.received) == ["e1", "e3", "e4"]
    body = webhook.received[0]
    assert body["type"] == "liquidation"
    assert body["account"] == ACCOUNT
    assert msgspec.convert(body["event"], MarginEvent) == event("e1", "liquidation")
    assert "equity=950.00" in body["text"]


async def test_a_stop_during_a_delivery_commits_it_so_a_restart_does_not_repeat_it(
    kafka: KafkaSettings, topics: TopicSettings, webhook: WebhookReceiver
) -> None:
    notifier = Notifier(kafka, topics, webhook.url)
    webhook.gate = asyncio.Event()
    await publish(kafka, topics.margin_events, event("s1", "liquidation"))
    try:
        await notifier.start()
        async with asyncio.timeout(60):
            await webhook.in_flight.wait()
        assert notifier.process is not None
        notifier.process.send_signal(signal.SIGTERM)  # while s1's request awaits its answer
        webhook.gate.set()
        await notifier.stop()
        await publish(kafka, topics.margin_events, event("s2", "liquidation"))
        await notifier.start()
        await webhook.wait_for(lambda got: "s2" in ids(got), "s2 after the restart")
        await notifier.stop()
    finally:
        await notifier.kill()
    assert ids(webhook.received) == ["s1", "s2"]


async def test_notify_refused_by_the_webhook_exits_with_one_line_and_commits_nothing(
    kafka: KafkaSettings, topics: TopicSettings
) -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    await publish(kafka, topics.margin_events, event("e9", "liquidation"))
    notifier = Notifier(kafka, topics, f"http://127.0.0.1:{port}/hooks/SECRET-TOKEN")
    try:
        await notifier.start()
        assert notifier.process is not None
        _, stderr = await asyncio.wait_for(notifier.process.communicate(), 60)
    finally:
        await notifier.kill()
        server.close()
        await server.wait_closed()
    assert notifier.process.returncode == 1
    last = stderr.decode().strip().splitlines()[-1]
    assert last.startswith(
        "liqmon: error: webhook http://127.0.0.1 refused event e9 with HTTP 404"
    ), last
    assert b"SECRET-TOKEN" not in stderr
