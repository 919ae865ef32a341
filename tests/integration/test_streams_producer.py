"""The idempotent producer against the real broker: acknowledged means written, and transactions."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from streams.broker import LocalBroker
from streams.errors import StreamsError
from streams.ledger_consumer import LedgerConsumer
from streams.producer import ProduceError, Producer
from streams.records import InboundRecord, OutboundRecord, TopicPartition
from streams.settings import KafkaSettings
from streams.table_consumer import TableConsumer

pytestmark = pytest.mark.kafka

NewTopic = Callable[..., Awaitable[str]]


async def _read_table(
    kafka: KafkaSettings, topic: str, **options: Any
) -> tuple[list[InboundRecord], dict[TopicPartition, int]]:
    """Everything in ``topic`` at this moment, and the end offsets that meant."""
    got: list[InboundRecord] = []
    async with TableConsumer(kafka, topic=topic, **options) as table:
        async with asyncio.timeout(20):
            while not table.caught_up:
                got += await table.poll_batch(1000, 200)
        return got, dict(table.start_end_offsets)


def _records(topic: str, count: int) -> list[OutboundRecord]:
    return [
        OutboundRecord(topic, f"acc-{i}".encode(), f"value-{i}".encode(), [("seq", b"%d" % i)])
        for i in range(count)
    ]


async def test_send_batch_returns_with_every_record_in_the_log(
    kafka: KafkaSettings, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=3)
    sent = _records(topic, 30)
    async with Producer(kafka) as producer:
        await producer.send_batch(sent)
    got, end_offsets = await _read_table(kafka, topic)
    assert sum(end_offsets.values()) == 30
    assert sorted((r.key, r.value, list(r.headers)) for r in got) == sorted(
        (r.key, r.value, list(r.headers)) for r in sent
    )


async def test_records_of_one_key_keep_their_order(
    kafka: KafkaSettings, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=3)
    sent = [OutboundRecord(topic, b"acc-1", b"%d" % i) for i in range(50)]
    async with Producer(kafka) as producer:
        await producer.send_batch(sent)
    got, _ = await _read_table(kafka, topic)
    assert [r.value for r in got] == [r.value for r in sent]


async def test_the_broker_tracks_the_producer_as_idempotent(
    kafka: KafkaSettings, new_topic: NewTopic, project_root: Path
) -> None:
    """Kafka keeps per-producer sequence state only for idempotent producers (KIP-98)."""
    topic = await new_topic(partitions=1)
    async with Producer(kafka) as producer:
        await producer.send_batch([OutboundRecord(topic, b"k", b"v%d" % i) for i in range(5)])
    broker = LocalBroker(project_root)
    tool = await asyncio.create_subprocess_exec(
        "java",
        "-cp",
        f"{broker.libs_dir}/*",
        "org.apache.kafka.tools.TransactionsCommand",
        "--bootstrap-server",
        kafka.bootstrap_servers,
        "describe-producers",
        "--topic",
        topic,
        "--partition",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await tool.communicate()
    assert tool.returncode == 0, stderr.decode()
    header, *rows = [line.split() for line in stdout.decode().splitlines() if line.strip()]
    assert len(rows) == 1
    producer_state = dict(zip(header, rows[0], strict=False))
    assert int(producer_state["ProducerId"]) >= 0
    assert producer_state["LastSequence"] == "4"


async def test_a_key_lands_in_the_partition_the_java_client_puts_it_in(
    kafka: KafkaSettings, new_topic: NewTopic, project_root: Path
) -> None:
    """liqmon picks each keyed record's partition itself (``streams.partitioning``): the
    same as Kafka's Java producer, so an account's records share one partition whoever
    writes them."""
    topic = await new_topic(partitions=7)
    keys = [f"acct-{i}" for i in range(60)] + ["açcount-é", "x", ""]
    keys.remove("")  # the console producer cannot write an empty key
    lines = "".join(f"{key}\tjava\n" for key in keys).encode()
    broker = LocalBroker(project_root)
    tool = await asyncio.create_subprocess_exec(
        "java", "-cp", f"{broker.libs_dir}/*", "org.apache.kafka.tools.ConsoleProducer",
        "--bootstrap-server", kafka.bootstrap_servers, "--topic", topic,
        "--property", "parse.key=true", "--property", "key.separator=\t",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await tool.communicate(lines)
    assert tool.returncode == 0, stderr.decode()
    async with Producer(kafka) as producer:
        await producer.send_batch([OutboundRecord(topic, k.encode(), b"liqmon") for k in keys])
    got, _ = await _read_table(kafka, topic)
    where: dict[tuple[bytes | None, bytes | None], int] = {
        (r.key, r.value): r.partition for r in got
    }
    assert len(where) == 2 * len(keys)
    for key in keys:
        assert where[key.encode(), b"liqmon"] == where[key.encode(), b"java"], key
    assert len(set(where.values())) > 3  # spread over the partitions, not all in one


async def test_sending_to_a_missing_topic_raises_a_produce_error(
    kafka: KafkaSettings, unique_name: Callable[[], str]
) -> None:
    async with Producer(kafka, request_timeout_ms=1500) as producer:
        with pytest.raises(ProduceError, match="1 of 1 records were not written"):
            await producer.send_batch([OutboundRecord(unique_name(), b"k", b"v")])


async def test_a_committed_transaction_publishes_records_and_offsets_together(
    kafka: KafkaSettings, new_topic: NewTopic, unique_name: Callable[[], str]
) -> None:
    source, sink = await new_topic(partitions=1), await new_topic(partitions=1)
    group = unique_name()
    async with Producer(kafka) as producer:
        await producer.send_batch(_records(source, 5))
    async with Producer(kafka, transactional_id=unique_name()) as producer, producer.transaction():
        await producer.send_batch(_records(sink, 3))
        await producer.send_offsets_to_transaction({TopicPartition(source, 0): 5}, group)
    got, _ = await _read_table(kafka, sink)
    assert [r.value for r in got] == [b"value-0", b"value-1", b"value-2"]
    async with LedgerConsumer(kafka, topic=source, group_id=group) as ledger:
        assert await ledger.committed([TopicPartition(source, 0)]) == {TopicPartition(source, 0): 5}
        assert await ledger.poll_batch(10, 200) == []


async def test_an_aborted_transaction_leaves_nothing_for_read_committed_readers(
    kafka: KafkaSettings, new_topic: NewTopic, unique_name: Callable[[], str]
) -> None:
    topic = await new_topic(partitions=1)

    async def failing_cycle(producer: Producer) -> None:
        async with producer.transaction():
            await producer.send_batch(_records(topic, 4))
            raise RuntimeError("cycle failed")

    async with Producer(kafka, transactional_id=unique_name()) as producer:
        with pytest.raises(RuntimeError, match="cycle failed"):
            await failing_cycle(producer)
        async with producer.transaction():
            await producer.send_batch([OutboundRecord(topic, b"k", b"after")])
    committed, _ = await _read_table(kafka, topic)
    assert [r.value for r in committed] == [b"after"]
    everything, _ = await _read_table(kafka, topic, isolation_level="read_uncommitted")
    assert len(everything) == 5


async def test_a_transaction_needs_a_transactional_id(kafka: KafkaSettings) -> None:
    async with Producer(kafka) as producer:
        with pytest.raises(StreamsError, match="transactional_id"):
            async with producer.transaction():
                pass
