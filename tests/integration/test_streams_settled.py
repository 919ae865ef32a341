"""settled_ends against the real broker: a transaction left open hides every record after
it from read_committed readers until it ends; reading up to the settled ends reads them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import aclosing

import pytest

from streams.errors import StreamsError
from streams.ledger_consumer import read_history
from streams.producer import Producer
from streams.records import InboundRecord, OutboundRecord, TopicPartition
from streams.settings import KafkaSettings
from streams.settled import settled_ends

pytestmark = pytest.mark.kafka

NewTopic = Callable[..., Awaitable[str]]


async def _read(kafka: KafkaSettings, until: dict[TopicPartition, int]) -> list[InboundRecord]:
    got: list[InboundRecord] = []
    async with aclosing(read_history(kafka, until)) as batches:
        async for batch in batches:
            got.extend(batch)
    return got


async def test_settled_ends_wait_for_an_open_transaction_and_reach_the_records_after_it(
    kafka: KafkaSettings, new_topic: NewTopic, unique_name: Callable[[], str]
) -> None:
    topic = await new_topic(partitions=1)
    tp = TopicPartition(topic, 0)
    opened, release = asyncio.Event(), asyncio.Event()

    async def open_cycle(producer: Producer) -> None:
        async with producer.transaction():
            await producer.send_batch(
                [OutboundRecord(topic, b"t", b"in-txn-%d" % i) for i in range(3)]
            )
            opened.set()
            await release.wait()

    async with Producer(kafka, transactional_id=unique_name()) as transactional:
        cycle = asyncio.ensure_future(open_cycle(transactional))
        try:
            async with asyncio.timeout(30):
                await opened.wait()
            async with Producer(kafka) as plain:
                await plain.send_batch(
                    [OutboundRecord(topic, b"p", b"after-%d" % i) for i in range(2)]
                )

            # Up to the last stable offset nothing can be read: the naive "end" hides all.
            assert await _read(kafka, {tp: 2**62}) == []
            with pytest.raises(StreamsError) as refused:
                await settled_ends(kafka, [tp], timeout_s=0.5)
            assert str(refused.value).startswith(
                f"{topic}[0] has a transaction open since offset 0 for over 0.5 s"
            )
            assert str(refused.value).endswith("run again later")

            heard: list[str] = []
            told = asyncio.Event()

            def hear(line: str) -> None:
                heard.append(line)
                told.set()

            waiting = asyncio.ensure_future(settled_ends(kafka, [tp], timeout_s=60, on_wait=hear))
            async with asyncio.timeout(30):
                await told.wait()
            assert not waiting.done()
            assert heard == [
                f"waiting for the transaction open since offset 0 of {topic}[0] to end (a "
                "producer killed mid-transaction is aborted by the broker after its "
                "transaction.timeout.ms)"
            ]
            release.set()
            await cycle
            ends = await asyncio.wait_for(waiting, 30)
        finally:
            release.set()
            await asyncio.gather(cycle, return_exceptions=True)
    assert ends == {tp: 5}
    assert sorted(r.value or b"" for r in await _read(kafka, ends)) == [
        b"after-0",
        b"after-1",
        b"in-txn-0",
        b"in-txn-1",
        b"in-txn-2",
    ]


async def test_settled_ends_of_quiet_partitions_are_their_ends(
    kafka: KafkaSettings, new_topic: NewTopic
) -> None:
    topic = await new_topic(partitions=2)
    async with Producer(kafka) as plain:
        await plain.send_batch([OutboundRecord(topic, b"k%d" % i, b"v") for i in range(6)])
    ends = await settled_ends(
        kafka, [TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout_s=5
    )
    assert sum(ends.values()) == 6
    assert await settled_ends(kafka, []) == {}
