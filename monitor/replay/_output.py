"""Where replayed events go, and expected events come from: JSON lines files or a topic,
in the wire format of ``margin-events`` (one event per line or record)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO

import msgspec

from monitor.errors import InputError
from monitor.replay._pipeline import Published
from monitor.schema import MarginEvent, MarginParameters
from streams import OutboundRecord, Producer, topic_partitions
from streams.settings import KafkaSettings

__all__ = ["publish_events", "read_events_file", "write_events"]

_encode = msgspec.json.Encoder().encode
_decode_event = msgspec.json.Decoder(MarginEvent).decode
_decode_parameters = msgspec.json.Decoder(MarginParameters).decode


class _Type(msgspec.Struct):
    type: str = ""


_decode_type = msgspec.json.Decoder(_Type).decode


def write_events(out: IO[bytes], published: Iterable[Published]) -> int:
    """Write each event as one JSON line; return how many."""
    count = 0
    for event in published:
        out.write(_encode(event) + b"\n")
        count += 1
    return count


def read_events_file(path: Path) -> list[Published]:
    """The events of a JSON lines file (as ``liqmon replay --output`` or ``liqmon tail
    --json`` write them); InputError naming the line that is not an event."""
    found: list[Published] = []
    try:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                line = line.strip()
                if not line:
                    continue
                try:
                    if _decode_type(line).type == "margin_parameters":
                        found.append(_decode_parameters(line))
                    else:
                        found.append(_decode_event(line))
                except msgspec.DecodeError as exc:
                    raise InputError(f"{path} line {number}: not a margin event ({exc})") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    return found


def _record(topic: str, event: Published) -> OutboundRecord:
    if isinstance(event, MarginParameters):
        key, kind = f"parameters:{event.underlying}", b"margin_parameters"
    else:
        key, kind = event.account, event.type.encode()
    return OutboundRecord(topic, key.encode(), _encode(event), [("type", kind)])


async def publish_events(kafka: KafkaSettings, topic: str, published: Sequence[Published]) -> None:
    """Produce the events to ``topic`` as the service would (key, ``type`` header)."""
    await topic_partitions(kafka, topic)  # one-line error if it does not exist
    async with Producer(kafka) as producer:
        await producer.send_batch(_record(topic, e) for e in published)
