"""``streams._lean``: the records it builds are aiokafka's, field for field.

The reference is aiokafka itself: the same fetched bytes are read by aiokafka's own
``PartitionRecords`` and by the lean one, and every attribute of a ``ConsumerRecord``
must agree.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

import pytest
from aiokafka.consumer import fetcher
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import ConsumerRecord, TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import _lean as lean

pytestmark = pytest.mark.usefixtures("lean_records_as_found")

TP = TopicPartition("prices", 3)
FIELDS = [field.name for field in dataclasses.fields(ConsumerRecord)]

Row = tuple[bytes | None, bytes | None, list[tuple[str, bytes]], int]


def _fetched(
    rows: list[Row], batch_sizes: list[int], *, transactional: bool = False, codec: int = 0
) -> bytes:
    """Kafka's wire bytes of ``rows`` split into batches of ``batch_sizes`` (cycled),
    compressed by ``codec`` (Kafka's attribute value: 0 none, 1 gzip)."""
    out, offset, k = bytearray(), 0, 0
    while offset < len(rows):
        size = batch_sizes[k % len(batch_sizes)]
        k += 1
        builder = DefaultRecordBatchBuilder(
            magic=2,
            compression_type=codec,
            is_transactional=int(transactional),
            producer_id=7 if transactional else -1,
            producer_epoch=0 if transactional else -1,
            base_sequence=offset if transactional else -1,
            batch_size=1 << 30,
        )
        for i, (key, value, headers, ts) in enumerate(rows[offset : offset + size]):
            builder.append(i, timestamp=ts, key=key, value=value, headers=headers)
        batch = builder.build()
        struct.pack_into(">q", batch, 0, offset)  # the batch's base offset
        out += batch
        offset += size
    return bytes(out)


def _read(kind: Any, data: bytes, fetch_offset: int = 0, **deserializers: Any) -> list[Any]:
    records = kind(
        TP,
        MemoryRecords(data),
        [],
        fetch_offset,
        deserializers.get("key"),
        deserializers.get("value"),
        True,  # check CRCs
        fetcher.READ_COMMITTED,
    )
    return list(records)


def _fields(record: Any) -> tuple[Any, ...]:
    return tuple(getattr(record, name) for name in FIELDS)


_bytes = st.none() | st.binary(max_size=40)
_rows = st.lists(
    st.tuples(
        _bytes,
        _bytes,
        st.lists(st.tuples(st.text(max_size=8), st.binary(max_size=8)), max_size=3),
        st.integers(min_value=0, max_value=2**41),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(
    rows=_rows,
    batch_sizes=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=4),
    start=st.integers(min_value=0, max_value=8),
    transactional=st.booleans(),
    codec=st.sampled_from([0, 1]),
)
def test_lean_records_equal_aiokafkas_field_for_field(
    rows: list[Row], batch_sizes: list[int], start: int, transactional: bool, codec: int
) -> None:
    # A fetch starts in its first batch (the broker sends the batch holding the offset).
    start = min(start, batch_sizes[0] - 1, len(rows) - 1)
    data = _fetched(rows, batch_sizes, transactional=transactional, codec=codec)
    stock = _read(lean._STOCK, data, start)
    lean_records = _read(lean._LeanPartitionRecords, data, start)
    assert [_fields(r) for r in lean_records] == [_fields(r) for r in stock]
    assert [r.offset for r in stock] == list(range(start, len(rows)))  # the reference reads
    assert all(type(r) is lean.LeanRecord for r in lean_records)


def test_a_consumer_with_deserializers_gets_aiokafkas_records() -> None:
    data = _fetched([(b"k", b"v", [], 5)], [1])
    (record,) = _read(lean._LeanPartitionRecords, data, value=bytes.upper)
    assert type(record) is ConsumerRecord
    assert (record.value, record.serialized_value_size) == (b"V", 1)


def test_install_switches_every_consumer_of_the_process_and_uninstall_switches_back() -> None:
    lean.uninstall()
    assert fetcher.PartitionRecords is lean._STOCK
    assert not lean.installed()
    assert lean.install()
    assert lean.install()  # again: no change
    assert fetcher.PartitionRecords is lean._LeanPartitionRecords
    assert lean.installed()
    lean.uninstall()
    assert fetcher.PartitionRecords is lean._STOCK


def test_an_aiokafka_that_builds_records_otherwise_is_left_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lean.uninstall()

    def other_hook(self: Any, tp: Any, record: Any, extra: Any) -> Any:
        raise AssertionError("never called")

    monkeypatch.setattr(lean._STOCK, "_consumer_record", other_hook)
    assert not lean.install()
    assert fetcher.PartitionRecords is lean._STOCK


def test_a_lean_record_is_read_only_and_sized_like_aiokafkas() -> None:
    record = lean.LeanRecord("t", 0, 1, 2, 0, None, b"abc", None, ())
    assert (record.serialized_key_size, record.serialized_value_size) == (-1, 3)
    with pytest.raises(AttributeError):
        record.value = b"x"  # type: ignore[misc]


def test_an_aiokafka_whose_records_differ_from_lean_ones_is_left_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lean.uninstall()
    stock_hook = lean._STOCK._consumer_record

    def later(self: Any, tp: Any, record: Any) -> Any:
        made = stock_hook(self, tp, record)
        made.timestamp += 1
        return made

    monkeypatch.setattr(lean._STOCK, "_consumer_record", later)
    assert not lean.install()
    assert fetcher.PartitionRecords is lean._STOCK
