"""JSON codecs for a caller-given msgspec type, and batch decoding that never raises.

A batch of consumed records splits into the items that decoded (kept next to the
record each came from) and :class:`Rejection` s carrying everything the dead-letter
queue needs. Per record the work is one decode and one append, as DESIGN.md asks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Generic, TypeVar, overload

import msgspec

from streams.records import Headers, InboundRecord

__all__ = [
    "INVALID",
    "MISSING_VALUE",
    "TOO_LARGE",
    "UNDECODABLE",
    "DecodedBatch",
    "JsonCodec",
    "Rejection",
]

T = TypeVar("T")

UNDECODABLE: Final = "undecodable"
"""Reason: the value is not JSON (bad bytes, bad syntax, nested too deeply)."""
INVALID: Final = "invalid"
"""Reason: the value is JSON but does not match the expected type."""
MISSING_VALUE: Final = "missing_value"
"""Reason: the record has no value (a tombstone) where a message was expected."""
TOO_LARGE: Final = "record_too_large"
"""Reason: the value is longer than the caller's limit; it is not decoded at all."""


class Rejection(msgspec.Struct, frozen=True, kw_only=True):
    """A record that could not be used, with why; enough to write it to the DLQ unchanged.

    ``reason`` is a short machine-readable word (``undecodable``, ``invalid``,
    ``missing_value``, or one the caller chooses such as ``unknown_instrument``);
    ``detail`` is the human explanation.
    """

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    reason: str
    detail: str = ""

    @classmethod
    def of(cls, record: InboundRecord, reason: str, detail: str = "") -> Rejection:
        """Reject ``record`` for ``reason``: also for checks made after decoding."""
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp=record.timestamp,
            key=record.key,
            value=record.value,
            headers=record.headers,
            reason=reason,
            detail=detail,
        )


class DecodedBatch(msgspec.Struct, Generic[T], kw_only=True):
    """The outcome of decoding a batch, in input order.

    ``items[i]`` was decoded from ``records[i]`` (the two lists have equal length),
    so ``items`` can go to the engine as it is while ``records`` keeps partitions,
    offsets, timestamps and keys at hand.
    """

    items: list[T]
    records: list[InboundRecord]
    rejections: list[Rejection]


class JsonCodec(Generic[T]):
    """Encode and decode one message type as JSON, reusing msgspec's encoder and decoder.

    ``type`` is any type msgspec understands, typically a Struct or a tagged union
    of Structs (then ``JsonCodec[LedgerEvent](LedgerEvent)`` keeps the static type).
    """

    __slots__ = ("_decode", "_encode", "type")

    @overload
    def __init__(self: JsonCodec[T], type: type[T]) -> None: ...

    @overload
    def __init__(self: JsonCodec[Any], type: Any) -> None: ...

    def __init__(self, type: Any) -> None:
        self.type = type
        self._decode = msgspec.json.Decoder(type).decode
        self._encode = msgspec.json.Encoder().encode

    def encode(self, item: T) -> bytes:
        """The JSON bytes of ``item``."""
        return self._encode(item)

    def decode(self, value: bytes) -> T:
        """Decode one value; raises ``msgspec.DecodeError`` if it is not a valid ``T``."""
        decoded: T = self._decode(value)
        return decoded

    def decode_all(
        self, values: Sequence[bytes | None], max_bytes: int | None = None
    ) -> list[T] | None:
        """Every value decoded, in order; None if any is missing, longer than ``max_bytes``
        (when given) or not a valid ``T``. Which one, and why, is for :meth:`decode_batch`."""
        if not values:
            return []
        raw: Sequence[Any] = values  # a None fails len() or the decode: a TypeError
        decode: Callable[[Any], T] = self._decode
        try:
            if max_bytes is None or max(map(len, raw)) <= max_bytes:
                return list(map(decode, raw))
        except (msgspec.DecodeError, RecursionError, TypeError):  # TypeError: a None value
            pass
        return None

    def decode_batch(
        self, records: Iterable[InboundRecord], max_bytes: int | None = None
    ) -> DecodedBatch[T]:
        """Decode every record's value; bad input becomes a :class:`Rejection`, never an error.

        A value longer than ``max_bytes`` (when given) is rejected as ``record_too_large``
        without being decoded.
        """
        records = records if isinstance(records, list) else list(records)
        # The usual batch is all good: decoded in one go (no per-record branches); any
        # None, oversized or bad value sends the batch to the loop below, which finds and
        # names the bad records.
        every = self.decode_all([record.value for record in records], max_bytes)
        if every is not None:
            return DecodedBatch(items=every, records=records, rejections=[])
        decode = self._decode
        limit = max_bytes if max_bytes is not None else -1
        items: list[T] = []
        good: list[InboundRecord] = []
        rejections: list[Rejection] = []
        for record in records:
            value = record.value
            if value is None:
                rejections.append(Rejection.of(record, MISSING_VALUE, "record has no value"))
                continue
            if limit >= 0 and len(value) > limit:
                detail = f"value of {len(value)} bytes is over the limit of {limit}"
                rejections.append(Rejection.of(record, TOO_LARGE, detail))
                continue
            try:
                item = decode(value)
            except msgspec.ValidationError as exc:
                rejections.append(Rejection.of(record, INVALID, str(exc)))
                continue
            except msgspec.DecodeError as exc:
                rejections.append(Rejection.of(record, UNDECODABLE, str(exc)))
                continue
            except RecursionError:
                rejections.append(Rejection.of(record, UNDECODABLE, "JSON is nested too deeply"))
                continue
            items.append(item)
            good.append(record)
        return DecodedBatch(items=items, records=good, rejections=rejections)
