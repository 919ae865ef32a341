"""liqmon's Kafka clients and kcat (librdkafka) read each other's records.

kcat stands in for every non-Python producer and consumer around liqmon: if keys, values
and headers survive the trip both ways, the wire format is plain Kafka.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.settings import KafkaSettings, client_kwargs

pytestmark = pytest.mark.kafka

NewTopic = Callable[..., Awaitable[str]]


@pytest.fixture(scope="module")
def kcat() -> str:
    path = shutil.which("kcat")
    if path is None:
        pytest.fail("kcat is not installed: `make test` installs it (deploy/setup-system.sh)")
    return path


async def _kcat(kcat: str, *args: str, stdin: bytes | None = None) -> str:
    process = await asyncio.create_subprocess_exec(
        kcat,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate(stdin)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_kcat_reads_what_liqmon_produces_with_keys_and_headers(
    kafka_settings: KafkaSettings, new_topic: NewTopic, kcat: str
) -> None:
    topic = await new_topic(partitions=2)
    producer = AIOKafkaProducer(**client_kwargs(kafka_settings), enable_idempotence=True)
    await producer.start()
    try:
        for i in range(6):
            await producer.send(
                topic,
                b'{"account":"acc-%d"}' % i,
                key=b"acc-%d" % i,
                headers=[("type", b"liquidation"), ("seq", b"%d" % i)],
            )
        await producer.flush()
    finally:
        await producer.stop()

    out = await _kcat(
        kcat,
        "-b",
        kafka_settings.bootstrap_servers,
        "-C",
        "-t",
        topic,
        "-o",
        "beginning",
        "-e",
        "-q",
        "-f",
        "%k|%s|%h\n",
    )
    assert sorted(out.splitlines()) == sorted(
        f'acc-{i}|{{"account":"acc-{i}"}}|type=liquidation,seq={i}' for i in range(6)
    )


async def test_liqmon_reads_what_kcat_produces_with_keys_and_headers(
    kafka_settings: KafkaSettings, new_topic: NewTopic, kcat: str
) -> None:
    topic = await new_topic(partitions=1)
    lines = b"".join(b'BTC-PERP\t{"mark": %d}\n' % (60_000 + i) for i in range(3))
    await _kcat(
        kcat,
        "-b",
        kafka_settings.bootstrap_servers,
        "-P",
        "-t",
        topic,
        "-K",
        "\t",
        "-H",
        "source=kcat",
        "-H",
        "schema=price-tick",
        stdin=lines,
    )

    consumer = AIOKafkaConsumer(
        topic, **client_kwargs(kafka_settings), auto_offset_reset="earliest"
    )
    await consumer.start()
    got = []
    try:
        async with asyncio.timeout(30):
            while len(got) < 3:
                batches = await consumer.getmany(timeout_ms=500)
                got += [m for records in batches.values() for m in records]
    finally:
        await consumer.stop()
    assert [(m.key, m.value) for m in got] == [
        (b"BTC-PERP", b'{"mark": %d}' % (60_000 + i)) for i in range(3)
    ]
    assert all(list(m.headers) == [("source", b"kcat"), ("schema", b"price-tick")] for m in got)
