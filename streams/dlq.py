"""Dead-letter records: bad input kept byte for byte, with headers saying whence and why.

A DLQ record carries the original key and value unchanged and the original headers,
followed by ``dlq.topic``, ``dlq.partition``, ``dlq.offset``, ``dlq.timestamp``,
``dlq.reason`` and ``dlq.detail`` (UTF-8; numbers in decimal). Anyone can inspect
it with ``kcat`` or re-publish it to its source topic once fixed.

A dead letter always fits in a Kafka record, whatever came in: a value longer than
``max_value_bytes`` (default 256 KiB) keeps only its first ``max_value_bytes``, a key
only its first ``MAX_KEY_BYTES`` and original headers are dropped when together they
exceed ``MAX_HEADER_BYTES``. Then ``dlq.truncated`` names what was cut (``value``,
``key``, ``headers``, comma-separated) and ``dlq.original_size`` gives the original
value's length in bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import msgspec

from streams.codec import Rejection
from streams.records import Headers, OutboundRecord

__all__ = [
    "DEFAULT_DLQ_TOPIC",
    "DLQ_DETAIL",
    "DLQ_OFFSET",
    "DLQ_ORIGINAL_SIZE",
    "DLQ_PARTITION",
    "DLQ_REASON",
    "DLQ_TIMESTAMP",
    "DLQ_TOPIC",
    "DLQ_TRUNCATED",
    "MAX_DETAIL_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_KEY_BYTES",
    "MAX_VALUE_BYTES",
    "DlqOrigin",
    "dlq_origin",
    "dlq_records",
    "to_dlq",
]

DEFAULT_DLQ_TOPIC: Final = "liqmon-dlq"

DLQ_TOPIC: Final = "dlq.topic"
DLQ_PARTITION: Final = "dlq.partition"
DLQ_OFFSET: Final = "dlq.offset"
DLQ_TIMESTAMP: Final = "dlq.timestamp"
DLQ_REASON: Final = "dlq.reason"
DLQ_DETAIL: Final = "dlq.detail"
DLQ_TRUNCATED: Final = "dlq.truncated"
DLQ_ORIGINAL_SIZE: Final = "dlq.original_size"

_PREFIX: Final = "dlq."
MAX_DETAIL_BYTES: Final = 1024
"""``dlq.detail`` is cut to this many bytes so a pathological message cannot bloat headers."""
MAX_VALUE_BYTES: Final = 256 * 1024
"""Default longest value prefix kept; well under Kafka's 1 MiB default record limit."""
MAX_KEY_BYTES: Final = 4096
"""Longest key prefix kept."""
MAX_HEADER_BYTES: Final = 16 * 1024
"""Original headers (names and values together) above this are dropped."""


class DlqOrigin(msgspec.Struct, frozen=True, kw_only=True):
    """Where a dead-lettered record came from and why it was rejected (read back from headers)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    reason: str
    detail: str


def to_dlq(
    rejection: Rejection,
    dlq_topic: str = DEFAULT_DLQ_TOPIC,
    max_value_bytes: int = MAX_VALUE_BYTES,
) -> OutboundRecord:
    """The DLQ record for ``rejection``: same key and value, original headers plus ``dlq.*``.

    ``dlq.*`` headers the record already had (it was dead-lettered before and
    re-published) are dropped so each appears once. Kafka needs a key or a value,
    so a record that had neither gets an empty value. Oversize parts are cut (see the
    module docstring), so the result always fits a record of 1 MiB.
    """
    detail = rejection.detail.encode("utf-8", "replace")[:MAX_DETAIL_BYTES]
    truncated: list[str] = []
    value = rejection.value
    if value is not None and len(value) > max_value_bytes:
        value = value[:max_value_bytes]
        truncated.append("value")
    key = rejection.key
    if key is not None and len(key) > MAX_KEY_BYTES:
        key = key[:MAX_KEY_BYTES]
        truncated.append("key")
    headers = [(name, data) for name, data in rejection.headers if not name.startswith(_PREFIX)]
    if sum(len(name) + len(data) for name, data in headers) > MAX_HEADER_BYTES:
        headers = []
        truncated.append("headers")
    headers += [
        (DLQ_TOPIC, rejection.topic.encode()),
        (DLQ_PARTITION, str(rejection.partition).encode()),
        (DLQ_OFFSET, str(rejection.offset).encode()),
        (DLQ_TIMESTAMP, str(rejection.timestamp).encode()),
        (DLQ_REASON, rejection.reason.encode()),
        (DLQ_DETAIL, detail),
    ]
    if truncated:
        original = len(rejection.value) if rejection.value is not None else 0
        headers += [
            (DLQ_TRUNCATED, ",".join(truncated).encode()),
            (DLQ_ORIGINAL_SIZE, str(original).encode()),
        ]
    if value is None and key is None:
        value = b""
    return OutboundRecord(dlq_topic, key, value, headers)


def dlq_records(
    rejections: Iterable[Rejection], dlq_topic: str = DEFAULT_DLQ_TOPIC
) -> list[OutboundRecord]:
    """:func:`to_dlq` for each rejection, ready for ``Producer.send_batch``."""
    return [to_dlq(rejection, dlq_topic) for rejection in rejections]


def dlq_origin(headers: Headers) -> DlqOrigin | None:
    """Read the ``dlq.*`` headers back, or None if the record is not a complete DLQ record."""
    found = {name: value for name, value in headers if name.startswith(_PREFIX)}
    try:
        return DlqOrigin(
            topic=found[DLQ_TOPIC].decode(),
            partition=int(found[DLQ_PARTITION]),
            offset=int(found[DLQ_OFFSET]),
            timestamp=int(found[DLQ_TIMESTAMP]),
            reason=found[DLQ_REASON].decode(),
            detail=found[DLQ_DETAIL].decode("utf-8", "replace"),
        )
    except (KeyError, ValueError):
        return None
