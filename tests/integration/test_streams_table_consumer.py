"""The table consumer against the real broker: every partition from the beginning, and caught_up."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from streams.errors import StreamsError
from streams.records import InboundRecord, TopicPartition
from streams.settings import KafkaSettings
from streams.table_consumer import TableConsumer, topic_partitions
from tests.integration.partition_writer import produce_per_partition

pytestmark = pytest.mark.kafka

NewTopic = Callable[..., Awaitable[str]]


async def _produce(kafka: KafkaSettings, topic: str, per_partition: dict[int, int]) -> None:
    await produce_per_partition(kafka, topic, per_partition, key=b"BTCUSDT")


async def _poll_until_caught_up(table: TableConsumer) -> list[InboundRecord]:
    got: list[InboundRecord] = []
    async with asyncio.timeout(20):
        while not table.caught_up:
            got += await table.poll_batch(1000, 200)
    return got


async def test_records_produced_before_start_are_all_read_before_caught_up(
    kafka: KafkaSettings, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=3)
    await _produce(kafka, topic, {0: 5, 2: 7})
    async with TableConsumer(kafka, topic=topic) as table:
        assert not table.caught_up
        got = await _poll_until_caught_up(table)
        assert table.partitions == {TopicPartition(topic, p) for p in range(3)}
    assert sorted(r.value or b"" for r in got) == sorted(
        [f"p0-{i}".encode() for i in range(5)] + [f"p2-{i}".encode() for i in range(7)]
    )


async def test_caught_up_turns_true_only_with_the_last_start_time_record(
    kafka: KafkaSettings, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=1)
    await _produce(kafka, topic, {0: 10})
    got: list[InboundRecord] = []
    async with TableConsumer(kafka, topic=topic) as table:
        async with asyncio.timeout(20):
            while len(got) < 10:
                got += await table.poll_batch(3, 200)
                assert table.caught_up == (len(got) == 10)


async def test_an_empty_topic_is_caught_up_as_soon_as_started(
    kafka: KafkaSettings, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=4)
    async with TableConsumer(kafka, topic=topic) as table:
        assert table.caught_up
        assert table.start_end_offsets == {TopicPartition(topic, p): 0 for p in range(4)}


async def test_records_produced_after_start_are_followed(
    kafka: KafkaSettings, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=2)
    await _produce(kafka, topic, {0: 1})
    async with TableConsumer(kafka, topic=topic) as table:
        before = await _poll_until_caught_up(table)
        await _produce(kafka, topic, {1: 3})
        after: list[InboundRecord] = []
        async with asyncio.timeout(20):
            while len(after) < 3:
                after += await table.poll_batch(1000, 200)
        assert table.caught_up
        assert await table.lag() == {TopicPartition(topic, 0): 0, TopicPartition(topic, 1): 0}
    assert [r.value for r in before] == [b"p0-0"]
    assert [r.value for r in after] == [b"p1-0", b"p1-1", b"p1-2"]


async def test_lag_counts_what_is_left_to_read(kafka: KafkaSettings, new_topic: NewTopic) -> None:
    topic = await new_topic(partitions=1)
    await _produce(kafka, topic, {0: 6})
    async with TableConsumer(kafka, topic=topic) as table:
        assert await table.lag() == {TopicPartition(topic, 0): 6}


async def test_a_missing_topic_is_a_streams_error_saying_so(
    kafka: KafkaSettings, unique_name: Callable[[], str]
) -> None:
    missing = unique_name()
    with pytest.raises(StreamsError, match=f"topic '{missing}' does not exist"):
        await topic_partitions(kafka, missing)
    with pytest.raises(StreamsError, match="does not exist"):
        await TableConsumer(kafka, topic=missing).start()
