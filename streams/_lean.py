"""Consumed records without aiokafka's per-record cost: :class:`LeanRecord`.

aiokafka hands out each consumed record as a ``ConsumerRecord`` dataclass. Building one
costs more than everything else of reading the record: about 600 ns of the 1.2 us a
record takes to come out of a fetched batch, where the decoding of a price tick takes
160 ns. liqmon's consumers read hundreds of thousands of ticks a second, so
:func:`install` makes aiokafka build a :class:`LeanRecord` instead: a msgspec ``Struct``
with the same attributes, built in one C call.

Only how a record object is built changes. Which records a consumer hands out (control
batches, aborted transactions, compacted gaps, CRC checks) and the positions it commits
stay aiokafka's own: the hook is the fetcher's per-record method (``_consumer_record``
of its ``PartitionRecords``), and :func:`install` leaves aiokafka as it is unless a
small batch read both ways gives the same records. A consumer with a key or value deserializer gets
aiokafka's own records. The switch is process-wide (aiokafka builds its fetched
partitions from one module-level class); :func:`uninstall` undoes it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
from aiokafka.consumer import fetcher
from aiokafka.structs import ConsumerRecord, TopicPartition

from streams.records import Headers

__all__ = ["LeanRecord", "install", "installed", "lean_records_installed", "uninstall"]

_STOCK: Any = fetcher.PartitionRecords


class LeanRecord(msgspec.Struct, frozen=True, gc=False):
    """A consumed record: the attributes of aiokafka's ``ConsumerRecord`` (a record of a
    consumer without deserializers: ``key`` and ``value`` are the record's bytes)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    timestamp_type: int
    key: bytes | None
    value: bytes | None
    checksum: int | None
    headers: Headers

    @property
    def serialized_key_size(self) -> int:
        """The key's length in bytes; -1 without a key."""
        return -1 if self.key is None else len(self.key)

    @property
    def serialized_value_size(self) -> int:
        """The value's length in bytes; -1 without a value (a tombstone)."""
        return -1 if self.value is None else len(self.value)


class _LeanPartitionRecords(_STOCK):  # type: ignore[misc]
    """aiokafka's fetched partition, handing out :class:`LeanRecord` s."""

    def _consumer_record(self, tp: Any, record: Any) -> Any:
        if self._key_deserializer or self._value_deserializer:
            return super()._consumer_record(tp, record)
        headers = record.headers
        return LeanRecord(
            tp.topic,
            tp.partition,
            record.offset,
            record.timestamp,
            record.timestamp_type,
            record.key,
            record.value,
            record.checksum,
            tuple(headers) if headers else (),
        )


def _fields(record: Any) -> tuple[Any, ...]:
    """Every attribute aiokafka's ``ConsumerRecord`` has (a field it adds one day, which
    a lean record lacks, fails :func:`_hook_fits`)."""
    return tuple(getattr(record, field.name) for field in dataclasses.fields(ConsumerRecord))


def _hook_fits() -> bool:
    """Whether this aiokafka builds records the way :class:`_LeanPartitionRecords`
    expects: a small fetched batch (a keyed record with headers, a tombstone) read with
    both classes gives the same records, attribute for attribute."""
    try:  # imported here (internals): an aiokafka that moved them declines, not fails
        from aiokafka.record.default_records import DefaultRecordBatchBuilder
        from aiokafka.record.memory_records import MemoryRecords

        builder = DefaultRecordBatchBuilder(
            magic=2,
            compression_type=0,
            is_transactional=0,
            producer_id=-1,
            producer_epoch=-1,
            base_sequence=-1,
            batch_size=1 << 20,
        )
        builder.append(0, timestamp=1, key=b"k", value=b"v", headers=[("h", b"1")])
        builder.append(1, timestamp=2, key=None, value=None, headers=[])
        data = bytes(builder.build())

        def read(kind: Any) -> list[tuple[Any, ...]]:
            partition = kind(
                TopicPartition("t", 0),
                MemoryRecords(data),
                [],  # no aborted transactions
                0,  # the fetch offset
                None,  # no key deserializer
                None,  # no value deserializer
                True,  # check CRCs
                fetcher.READ_UNCOMMITTED,
            )
            return [_fields(record) for record in partition]

        lean = read(_LeanPartitionRecords)
        return len(lean) == 2 and lean == read(_STOCK)
    except Exception:  # any change of these internals: keep aiokafka's own records
        return False


def install() -> bool:
    """Make every aiokafka consumer of this process hand out :class:`LeanRecord` s.

    Safe to call again. Returns False, changing nothing, when the installed aiokafka
    does not build records the way this module expects (then its own records are used).
    """
    if fetcher.PartitionRecords is _LeanPartitionRecords:
        return True
    if fetcher.PartitionRecords is not _STOCK or not _hook_fits():
        return False
    fetcher.PartitionRecords = _LeanPartitionRecords
    return True


def uninstall() -> None:
    """Back to aiokafka's own ``ConsumerRecord`` s (for batches fetched from now on)."""
    if fetcher.PartitionRecords is _LeanPartitionRecords:
        fetcher.PartitionRecords = _STOCK


def installed() -> bool:
    """Whether consumers of this process hand out :class:`LeanRecord` s."""
    return fetcher.PartitionRecords is _LeanPartitionRecords


#: :func:`installed`, as ``streams`` exports it.
lean_records_installed = installed
