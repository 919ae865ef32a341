"""``streams._lean`` on a real broker: a topic with keys, headers, a tombstone, and
committed and aborted transactions reads the same with lean records as with aiokafka's,
under both isolation levels, and liqmon's consumers hand out lean records."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from streams import _lean as lean
from streams.settings import KafkaSettings, client_kwargs
from streams.table_consumer import TableConsumer

pytestmark = [pytest.mark.kafka, pytest.mark.usefixtures("lean_records_as_found")]

NewTopic = Callable[..., Awaitable[str]]
FIELDS = [field.name for field in dataclasses.fields(ConsumerRecord)]


async def _write(kafka: KafkaSettings, topic: str, transactional_id: str) -> int:
    """Plain records (gzip batches), then committed and aborted transactions; the offsets
    written."""
    plain = AIOKafkaProducer(**client_kwargs(kafka), compression_type="gzip")
    await plain.start()
    try:
        await plain.send_and_wait(topic, b"v0", key=b"k0", headers=[("h", b"1"), ("h", b"2")])
        await plain.send_and_wait(topic, None, key=b"k0")  # a tombstone
        await plain.send_and_wait(topic, b"v2")  # no key
    finally:
        await plain.stop()
    txn = AIOKafkaProducer(**client_kwargs(kafka), transactional_id=transactional_id)
    await txn.start()
    try:
        for commit, values in ((True, [b"c1", b"c2"]), (False, [b"a1", b"a2"]), (True, [b"c3"])):
            await txn.begin_transaction()
            for value in values:
                await txn.send_and_wait(topic, value, key=b"t", headers=[("x", value)])
            if commit:
                await txn.commit_transaction()
            else:
                await txn.abort_transaction()
    finally:
        await txn.stop()
    return 3 + 5 + 3  # records and one marker per transaction


async def _read(kafka: KafkaSettings, topic: str, end: int, isolation: str) -> list[Any]:
    consumer = AIOKafkaConsumer(
        **client_kwargs(kafka), enable_auto_commit=False, isolation_level=isolation
    )
    await consumer.start()
    tp = TopicPartition(topic, 0)
    got: list[Any] = []
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        async with asyncio.timeout(30):
            while await consumer.position(tp) < end:
                got += (await consumer.getmany(tp, timeout_ms=500)).get(tp, [])
    finally:
        await consumer.stop()
    return got


def _fields(record: Any) -> tuple[Any, ...]:
    return tuple(getattr(record, name) for name in FIELDS)


async def test_lean_records_read_a_topic_as_aiokafkas_do(
    kafka_settings: KafkaSettings, new_topic: NewTopic, unique_name: Callable[[], str]
) -> None:
    topic = await new_topic()
    end = await _write(kafka_settings, topic, unique_name())
    for isolation, values in (
        ("read_committed", [b"v0", None, b"v2", b"c1", b"c2", b"c3"]),
        ("read_uncommitted", [b"v0", None, b"v2", b"c1", b"c2", b"a1", b"a2", b"c3"]),
    ):
        lean.uninstall()
        stock = await _read(kafka_settings, topic, end, isolation)
        assert lean.install()
        lean_records = await _read(kafka_settings, topic, end, isolation)
        assert [r.value for r in stock] == values
        assert [_fields(r) for r in lean_records] == [_fields(r) for r in stock]
        assert {type(r) for r in lean_records} == {lean.LeanRecord}


async def test_liqmons_consumers_hand_out_lean_records(
    kafka_settings: KafkaSettings, new_topic: NewTopic, unique_name: Callable[[], str]
) -> None:
    topic = await new_topic()
    await _write(kafka_settings, topic, unique_name())
    lean.uninstall()
    consumer = TableConsumer(kafka_settings, topic=topic)
    await consumer.start()
    got: list[Any] = []
    try:
        async with asyncio.timeout(30):
            while not consumer.caught_up:
                got += await consumer.poll_batch(100, 500)
    finally:
        await consumer.stop()
    assert lean.installed()
    assert [r.value for r in got] == [b"v0", None, b"v2", b"c1", b"c2", b"c3"]
    assert {type(r) for r in got} == {lean.LeanRecord}
