"""`liqmon run` as users start it: a process that serves probes and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer

from streams import TopicPartition
from streams.settings import client_kwargs
from tests.integration.liqmon_process import http_get
from tests.integration.monitor_harness import (
    INSTRUMENTS,
    MonitorHarness,
    btc,
    by_account,
    now_ms,
    open_book,
)

pytestmark = pytest.mark.kafka


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_run_serves_probes_and_exits_cleanly_on_sigterm_after_committing(
    harness: MonitorHarness, tmp_path: Path
) -> None:
    h = harness
    instruments = tmp_path / "instruments.json"
    instruments.write_bytes(msgspec.json.encode({"instruments": INSTRUMENTS}))
    port = free_port()
    topics = h.topics
    env = {
        **os.environ,
        "LIQMON_KAFKA__BOOTSTRAP_SERVERS": h.kafka.bootstrap_servers,
        "LIQMON_TOPICS__PRICES": topics.prices,
        "LIQMON_TOPICS__FILLS": topics.fills,
        "LIQMON_TOPICS__MARGIN_EVENTS": topics.margin_events,
        "LIQMON_TOPICS__STATE": topics.state,
        "LIQMON_TOPICS__DLQ": topics.dlq,
        "LIQMON_SERVICE__GROUP_ID": h.group_id,
        "LIQMON_SERVICE__HTTP_PORT": str(port),
        "LIQMON_LOG__FORMAT": "json",
    }
    t0 = now_ms()
    await h.prices(btc(100.0, t0))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "run",
        "--instruments",
        str(instruments),
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if (await http_get(port, "/readyz"))[0] == 200:
                    break
            except OSError:
                pass
            assert process.returncode is None, "liqmon run exited early"
            assert time.monotonic() < deadline, "liqmon run did not become ready"
            await asyncio.sleep(0.05)
        assert await http_get(port, "/healthz") == (200, b"ok\n")
        await open_book(h, t0)
        await h.wait_events(lambda ev: by_account(ev) == {"a3": ["margin_call"]}, "a3 call")
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert b'"event":"stopped"' in stderr
    # Everything it consumed was committed before it left.
    ends, committed = await _ends_and_committed(h, topics.fills, topics.fills_partitions)
    assert committed == ends


async def _ends_and_committed(
    h: MonitorHarness, topic: str, partitions: int
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """End offsets of ``topic`` and the group's committed offsets, read without joining it."""
    reader = AIOKafkaConsumer(
        **client_kwargs(h.kafka), group_id=h.group_id, enable_auto_commit=False
    )
    await reader.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = await reader.end_offsets(tps)
        return dict(ends), {tp: (await reader.committed(tp)) or 0 for tp in tps}
    finally:
        await reader.stop()


async def test_run_with_a_missing_topic_is_one_line_naming_it(
    harness: MonitorHarness, tmp_path: Path
) -> None:
    instruments = tmp_path / "instruments.json"
    instruments.write_bytes(msgspec.json.encode({"instruments": INSTRUMENTS}))
    env = {
        **os.environ,
        "LIQMON_KAFKA__BOOTSTRAP_SERVERS": harness.kafka.bootstrap_servers,
        "LIQMON_TOPICS__PRICES": harness.topics.prices,
        "LIQMON_TOPICS__FILLS": harness.topics.fills + "-missing",
        "LIQMON_SERVICE__HTTP_PORT": "0",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "run",
        "--instruments",
        str(instruments),
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    assert stderr.decode().strip().splitlines()[-1] == (
        f"liqmon: error: topic '{harness.topics.fills}-missing' does not exist; "
        "create it first (liqmon topics create)"
    )
