"""Bad input from Kafka goes to the DLQ byte for byte with its origin; good input still decodes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import msgspec
import pytest

from streams.codec import INVALID, UNDECODABLE, JsonCodec
from streams.dlq import dlq_origin, dlq_records
from streams.ledger_consumer import LedgerConsumer
from streams.producer import Producer
from streams.records import InboundRecord, OutboundRecord, next_offsets
from streams.settings import KafkaSettings
from streams.table_consumer import TableConsumer

pytestmark = pytest.mark.kafka

NewTopic = Callable[..., Awaitable[str]]


class Deposit(msgspec.Struct, frozen=True, kw_only=True):
    account: str
    amount: float


async def test_garbage_goes_to_the_dlq_with_its_origin_and_later_records_still_decode(
    kafka: KafkaSettings, new_topic: NewTopic, unique_name: Callable[[], str]
) -> None:
    source, dlq = await new_topic(partitions=1), await new_topic(partitions=1)
    codec = JsonCodec(Deposit)
    trace = [("trace-id", b"t-1")]
    async with Producer(kafka) as producer:
        await producer.send_batch(
            [
                OutboundRecord(source, b"a", codec.encode(Deposit(account="a", amount=1))),
                OutboundRecord(source, b"a", b"\xde\xad\xbe\xef", trace),
                OutboundRecord(source, b"a", b'{"account":"a"}'),
                OutboundRecord(source, b"a", codec.encode(Deposit(account="a", amount=2))),
            ]
        )
        async with LedgerConsumer(kafka, topic=source, group_id=unique_name()) as ledger:
            consumed: list[InboundRecord] = []
            async with asyncio.timeout(20):
                while len(consumed) < 4:
                    consumed += await ledger.poll_batch(100, 200)
            batch = codec.decode_batch(consumed)
            await producer.send_batch(dlq_records(batch.rejections, dlq))
            await ledger.commit(next_offsets(consumed))

    assert [item.amount for item in batch.items] == [1.0, 2.0]
    assert [r.offset for r in batch.records] == [0, 3]

    dead: list[InboundRecord] = []
    async with TableConsumer(kafka, topic=dlq) as table:
        async with asyncio.timeout(20):
            while not table.caught_up:
                dead += await table.poll_batch(100, 200)
    assert [(r.key, r.value) for r in dead] == [
        (b"a", b"\xde\xad\xbe\xef"),
        (b"a", b'{"account":"a"}'),
    ]
    garbage, invalid = (dlq_origin(r.headers) for r in dead)
    assert garbage is not None
    assert invalid is not None
    assert (garbage.topic, garbage.partition, garbage.offset) == (source, 0, 1)
    assert (garbage.reason, invalid.reason) == (UNDECODABLE, INVALID)
    assert invalid.offset == 2
    assert "amount" in invalid.detail
    assert dead[0].headers[0] == ("trace-id", b"t-1")
