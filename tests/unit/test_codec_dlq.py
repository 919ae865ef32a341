"""Turning rejections into dead-letter records that keep the original bytes, with whence and why."""

from __future__ import annotations

import pytest

from streams.codec import Rejection
from streams.dlq import (
    DEFAULT_DLQ_TOPIC,
    DLQ_DETAIL,
    DLQ_OFFSET,
    DLQ_ORIGINAL_SIZE,
    DLQ_PARTITION,
    DLQ_REASON,
    DLQ_TOPIC,
    DLQ_TRUNCATED,
    MAX_DETAIL_BYTES,
    MAX_HEADER_BYTES,
    MAX_KEY_BYTES,
    MAX_VALUE_BYTES,
    DlqOrigin,
    dlq_origin,
    dlq_records,
    to_dlq,
)

pytestmark = pytest.mark.unit


def _rejection(**overrides: object) -> Rejection:
    fields: dict[str, object] = {
        "topic": "fills",
        "partition": 3,
        "offset": 42,
        "timestamp": 1_700_000_000_123,
        "key": b"acc-7",
        "value": b"\x00garbage",
        "headers": (("trace-id", b"abc"), ("source", b"venue-1")),
        "reason": "undecodable",
        "detail": "JSON is malformed: invalid character (byte 0)",
    }
    fields.update(overrides)
    return Rejection(**fields)  # type: ignore[arg-type]


def test_dlq_record_keeps_key_and_value_bytes_unchanged() -> None:
    record = to_dlq(_rejection())
    assert record.topic == DEFAULT_DLQ_TOPIC
    assert (record.key, record.value) == (b"acc-7", b"\x00garbage")


def test_dlq_record_keeps_the_original_headers_first_then_names_the_source() -> None:
    headers = list(to_dlq(_rejection()).headers)
    assert headers[:2] == [("trace-id", b"abc"), ("source", b"venue-1")]
    named = dict(headers[2:])
    assert named[DLQ_TOPIC] == b"fills"
    assert named[DLQ_PARTITION] == b"3"
    assert named[DLQ_OFFSET] == b"42"
    assert named[DLQ_REASON] == b"undecodable"
    assert named[DLQ_DETAIL] == b"JSON is malformed: invalid character (byte 0)"


def test_dlq_headers_read_back_into_the_origin() -> None:
    origin = dlq_origin(to_dlq(_rejection()).headers)
    assert origin == DlqOrigin(
        topic="fills",
        partition=3,
        offset=42,
        timestamp=1_700_000_000_123,
        reason="undecodable",
        detail="JSON is malformed: invalid character (byte 0)",
    )


def test_a_record_dead_lettered_twice_carries_only_the_latest_dlq_headers() -> None:
    first = to_dlq(_rejection())
    again = to_dlq(_rejection(topic="fills-retry", headers=first.headers, reason="invalid"))
    names = [name for name, _ in again.headers]
    assert names.count(DLQ_TOPIC) == 1
    assert names.count(DLQ_REASON) == 1
    assert dict(again.headers)[DLQ_TOPIC] == b"fills-retry"
    assert ("trace-id", b"abc") in again.headers


def test_a_long_detail_is_cut_to_a_bounded_size() -> None:
    record = to_dlq(_rejection(detail="x" * 10 * MAX_DETAIL_BYTES))
    assert len(dict(record.headers)[DLQ_DETAIL]) == MAX_DETAIL_BYTES


def test_a_record_without_key_or_value_gets_an_empty_value() -> None:
    record = to_dlq(_rejection(key=None, value=None, reason="missing_value"))
    assert record.value == b""


def test_a_tombstone_with_a_key_stays_a_tombstone() -> None:
    record = to_dlq(_rejection(value=None, reason="missing_value"))
    assert (record.key, record.value) == (b"acc-7", None)


def test_headers_of_an_ordinary_record_have_no_dlq_origin() -> None:
    assert dlq_origin([("trace-id", b"abc")]) is None


def test_dlq_records_can_target_another_topic() -> None:
    records = dlq_records([_rejection(), _rejection(offset=43)], "custom-dlq")
    assert [r.topic for r in records] == ["custom-dlq", "custom-dlq"]
    assert [dict(r.headers)[DLQ_OFFSET] for r in records] == [b"42", b"43"]


def test_an_ordinary_dead_letter_says_nothing_was_truncated() -> None:
    names = [name for name, _ in to_dlq(_rejection()).headers]
    assert DLQ_TRUNCATED not in names
    assert DLQ_ORIGINAL_SIZE not in names


def test_an_oversize_value_keeps_a_bounded_prefix_and_says_how_big_it_was() -> None:
    value = b"{" + b"x" * (1024 * 1024)
    record = to_dlq(_rejection(value=value))
    assert record.value == value[:MAX_VALUE_BYTES]
    headers = dict(record.headers)
    assert headers[DLQ_TRUNCATED] == b"value"
    assert headers[DLQ_ORIGINAL_SIZE] == str(len(value)).encode()
    assert headers[DLQ_OFFSET] == b"42"


def test_an_oversize_key_and_headers_are_cut_so_the_dead_letter_fits_a_record() -> None:
    huge = (("blob", b"h" * (MAX_HEADER_BYTES + 1)),)
    record = to_dlq(
        _rejection(key=b"k" * 2_000_000, value=b"v" * 900_000, headers=huge), max_value_bytes=1000
    )
    assert record.key == b"k" * MAX_KEY_BYTES
    assert record.value == b"v" * 1000
    assert dict(record.headers)[DLQ_TRUNCATED] == b"value,key,headers"
    size = len(record.key) + len(record.value) + sum(len(n) + len(v) for n, v in record.headers)
    assert size < 64 * 1024
