"""Decoding batches of records into items and rejections, never raising on bad input."""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.codec import INVALID, MISSING_VALUE, TOO_LARGE, UNDECODABLE, JsonCodec, Rejection
from streams.records import Headers, TopicPartition, next_offsets

pytestmark = pytest.mark.unit


class Deposit(msgspec.Struct, tag="deposit", tag_field="type", frozen=True, kw_only=True):
    account: str
    amount: float

    def __post_init__(self) -> None:
        if self.amount < 0:
            raise ValueError("amount must not be negative")


class Trade(msgspec.Struct, tag="trade", tag_field="type", frozen=True, kw_only=True):
    account: str
    qty: float


Event = Deposit | Trade


@dataclass(frozen=True)
class FakeRecord:
    value: bytes | None
    offset: int = 0
    partition: int = 0
    topic: str = "ledger"
    timestamp: int = 1_700_000_000_000
    key: bytes | None = b"acc-1"
    headers: Headers = field(default_factory=tuple)


@pytest.fixture
def codec() -> JsonCodec[Event]:
    return JsonCodec[Event](Event)


def test_good_records_decode_to_items_aligned_with_their_records(codec: JsonCodec[Event]) -> None:
    records = [
        FakeRecord(b'{"type":"deposit","account":"a","amount":5}', offset=3),
        FakeRecord(b'{"type":"trade","account":"b","qty":1.5}', offset=4),
    ]
    batch = codec.decode_batch(records)
    assert batch.items == [Deposit(account="a", amount=5.0), Trade(account="b", qty=1.5)]
    assert batch.records == records
    assert batch.rejections == []


def test_garbage_bytes_are_rejected_as_undecodable(codec: JsonCodec[Event]) -> None:
    record = FakeRecord(b"\xff\x00not json", offset=7, headers=(("trace", b"t1"),))
    [rejection] = codec.decode_batch([record]).rejections
    assert rejection.reason == UNDECODABLE
    assert rejection.detail
    assert (rejection.topic, rejection.partition, rejection.offset) == ("ledger", 0, 7)
    assert (rejection.key, rejection.value) == (b"acc-1", b"\xff\x00not json")
    assert rejection.headers == (("trace", b"t1"),)
    assert rejection.timestamp == record.timestamp


def test_json_of_the_wrong_shape_is_rejected_as_invalid(codec: JsonCodec[Event]) -> None:
    records = [
        FakeRecord(b'{"type":"deposit","account":"a"}'),
        FakeRecord(b'{"type":"swap","account":"a"}'),
        FakeRecord(b'{"type":"deposit","account":"a","amount":-1}'),
    ]
    rejections = codec.decode_batch(records).rejections
    assert [r.reason for r in rejections] == [INVALID, INVALID, INVALID]
    assert "amount" in rejections[0].detail
    assert "amount must not be negative" in rejections[2].detail


def test_a_tombstone_is_rejected_as_missing_value(codec: JsonCodec[Event]) -> None:
    [rejection] = codec.decode_batch([FakeRecord(None)]).rejections
    assert rejection.reason == MISSING_VALUE
    assert rejection.value is None


def test_a_value_over_the_size_limit_is_rejected_without_decoding(codec: JsonCodec[Event]) -> None:
    small = FakeRecord(b'{"type":"trade","account":"a","qty":1}', offset=0)
    big = FakeRecord(b'{"type":"trade","account":"' + b"a" * 2000 + b'","qty":1}', offset=1)
    batch = codec.decode_batch([small, big], max_bytes=1000)
    assert batch.records == [small]
    [rejection] = batch.rejections
    assert (rejection.reason, rejection.offset) == (TOO_LARGE, 1)
    assert "over the limit of 1000" in rejection.detail


def test_absurdly_nested_json_is_rejected_not_raised() -> None:
    codec: JsonCodec[object] = JsonCodec(object)
    [rejection] = codec.decode_batch([FakeRecord(b"[" * 100_000)]).rejections
    assert rejection.reason == UNDECODABLE


def test_good_records_after_bad_ones_still_decode_in_order(codec: JsonCodec[Event]) -> None:
    records = [
        FakeRecord(b'{"type":"trade","account":"a","qty":1}', offset=0),
        FakeRecord(b"garbage", offset=1),
        FakeRecord(b'{"type":"trade","account":"a","qty":2}', offset=2),
        FakeRecord(b"", offset=3),
        FakeRecord(b'{"type":"trade","account":"a","qty":3}', offset=4),
    ]
    batch = codec.decode_batch(records)
    assert [item.qty for item in batch.items if isinstance(item, Trade)] == [1.0, 2.0, 3.0]
    assert [r.offset for r in batch.records] == [0, 2, 4]
    assert [r.offset for r in batch.rejections] == [1, 3]


@given(st.binary(max_size=200))
def test_decode_batch_never_raises_and_accounts_for_every_record(value: bytes) -> None:
    codec = JsonCodec[Event](Event)
    batch = codec.decode_batch([FakeRecord(value)])
    assert len(batch.items) + len(batch.rejections) == 1
    assert len(batch.items) == len(batch.records)


def test_encode_then_decode_gives_the_item_back(codec: JsonCodec[Event]) -> None:
    deposit = Deposit(account="a", amount=2.5)
    assert codec.decode(codec.encode(deposit)) == deposit
    assert msgspec.json.decode(codec.encode(deposit))["type"] == "deposit"


def test_decode_of_one_value_raises_on_bad_input(codec: JsonCodec[Event]) -> None:
    with pytest.raises(msgspec.DecodeError):
        codec.decode(b"{")


def test_a_caller_can_reject_a_decoded_record_for_its_own_reason() -> None:
    record = FakeRecord(b"{}", offset=9, partition=2)
    rejection = Rejection.of(record, "unknown_instrument", "XYZ is not configured")
    assert (rejection.partition, rejection.offset, rejection.reason) == (2, 9, "unknown_instrument")
    assert rejection.detail == "XYZ is not configured"


def test_next_offsets_is_one_past_the_last_offset_of_each_partition() -> None:
    records = [
        FakeRecord(b"", partition=0, offset=4),
        FakeRecord(b"", partition=1, offset=10),
        FakeRecord(b"", partition=0, offset=5),
        FakeRecord(b"", partition=1, offset=11),
    ]
    assert next_offsets(records) == {
        TopicPartition("ledger", 0): 6,
        TopicPartition("ledger", 1): 12,
    }
