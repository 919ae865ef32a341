"""The Kafka release we run works with the aiokafka we ship (deploy/kafka/README.md).

Each test exercises one feature liqmon relies on, with plain aiokafka and the client
arguments every liqmon client uses, so a Kafka upgrade that breaks the client fails here
first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.settings import KafkaSettings, client_kwargs

pytestmark = pytest.mark.kafka

NewTopic = Callable[..., Awaitable[str]]


async def _read_all(
    kafka: KafkaSettings, topic: str, count: int, **options: object
) -> list[tuple[bytes | None, bytes | None]]:
    consumer = AIOKafkaConsumer(
        topic, **client_kwargs(kafka), auto_offset_reset="earliest", **options
    )
    await consumer.start()
    got: list[tuple[bytes | None, bytes | None]] = []
    try:
        async with asyncio.timeout(30):
            while len(got) < count:
                batches = await consumer.getmany(timeout_ms=500)
                got += [(m.key, m.value) for records in batches.values() for m in records]
    finally:
        await consumer.stop()
    return got


async def test_an_idempotent_producer_writes_every_record_once(
    kafka_settings: KafkaSettings, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=3)
    producer = AIOKafkaProducer(**client_kwargs(kafka_settings), enable_idempotence=True)
    await producer.start()
    try:
        for i in range(20):
            await producer.send(topic, b"v%d" % i, key=b"k%d" % (i % 4))
        await producer.flush()
    finally:
        await producer.stop()
    got = await _read_all(kafka_settings, topic, 20)
    assert sorted(value for _, value in got if value) == sorted(b"v%d" % i for i in range(20))


async def test_a_consumer_group_commits_and_a_new_member_resumes_there(
    kafka_settings: KafkaSettings, new_topic: NewTopic, unique_name: Callable[[], str]
) -> None:
    topic, group = await new_topic(partitions=2), unique_name()
    producer = AIOKafkaProducer(**client_kwargs(kafka_settings))
    await producer.start()
    try:
        for i in range(10):
            await producer.send(topic, b"%d" % i, partition=i % 2)
        await producer.flush()
    finally:
        await producer.stop()

    await _read_all(kafka_settings, topic, 10, group_id=group, enable_auto_commit=False)
    consumer = AIOKafkaConsumer(
        topic, **client_kwargs(kafka_settings), group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        committed = [await consumer.committed(TopicPartition(topic, p)) for p in (0, 1)]
    finally:
        await consumer.stop()
    # _read_all stops its consumer without committing: nothing is committed yet.
    assert committed == [None, None]

    consumer = AIOKafkaConsumer(
        topic,
        **client_kwargs(kafka_settings),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        seen = 0
        async with asyncio.timeout(30):
            while seen < 10:
                seen += sum(len(r) for r in (await consumer.getmany(timeout_ms=500)).values())
        await consumer.commit()
        committed = [await consumer.committed(TopicPartition(topic, p)) for p in (0, 1)]
    finally:
        await consumer.stop()
    assert committed == [5, 5]


async def test_aborted_transactions_stay_invisible_to_read_committed_consumers(
    kafka_settings: KafkaSettings, new_topic: NewTopic, unique_name: Callable[[], str]
) -> None:
    topic = await new_topic(partitions=1)
    producer = AIOKafkaProducer(**client_kwargs(kafka_settings), transactional_id=unique_name())
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(topic, b"committed-1")
        await producer.begin_transaction()
        await producer.send(topic, b"aborted")
        await producer.flush()
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send(topic, b"committed-2")
    finally:
        await producer.stop()
    got = await _read_all(kafka_settings, topic, 2, isolation_level="read_committed")
    assert [value for _, value in got] == [b"committed-1", b"committed-2"]


async def test_offsets_sent_in_a_transaction_are_committed_with_it(
    kafka_settings: KafkaSettings, new_topic: NewTopic, unique_name: Callable[[], str]
) -> None:
    source, out, group = await new_topic(partitions=1), await new_topic(partitions=1), unique_name()
    producer = AIOKafkaProducer(**client_kwargs(kafka_settings), transactional_id=unique_name())
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(out, b"event")
            await producer.send_offsets_to_transaction({TopicPartition(source, 0): 7}, group)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(source, **client_kwargs(kafka_settings), group_id=group)
    await consumer.start()
    try:
        assert await consumer.committed(TopicPartition(source, 0)) == 7
    finally:
        await consumer.stop()
