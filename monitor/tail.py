"""Follow the ``margin-events`` topic and print each event: the engine of ``liqmon tail``.

Tail must not disturb anything: it joins no consumer group and commits nothing; it
assigns itself every partition and reads from the end (or the beginning). Filters
run before decoding where they can: the event type from the record's ``type`` header
(the monitor sets it), the account from the record key. A record without them is
decoded and filtered on its fields instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgspec

from monitor.schema import MarginEvent, MarginParameters, PositionRisk
from streams.records import InboundRecord
from streams.settings import KafkaSettings

__all__ = ["TailFilter", "format_event", "format_parameters", "render", "tail_events"]

_decode = msgspec.json.Decoder(MarginEvent).decode
_decode_parameters = msgspec.json.Decoder(MarginParameters).decode
_encode = msgspec.json.Encoder().encode
_SHOWN_POSITIONS = 3


class TailFilter(NamedTuple):
    """Which events to show: any of ``types`` (empty: all) for any of ``accounts``."""

    types: frozenset[str] = frozenset()
    accounts: frozenset[str] = frozenset()

    def admits_record(self, record: InboundRecord) -> bool | None:
        """Decide from headers and key alone; None when the value must be decoded."""
        undecided = False
        if self.types:
            kind = _header(record, "type")
            if kind is None:
                undecided = True
            elif kind not in self.types:
                return False
        if self.accounts:
            if record.key is None:
                undecided = True
            elif record.key.decode(errors="replace") not in self.accounts:
                return False
        return None if undecided else True

    def admits_event(self, event: MarginEvent) -> bool:
        """The same filter on a decoded event."""
        return (not self.types or event.type in self.types) and (
            not self.accounts or event.account in self.accounts
        )


_EVERYTHING = TailFilter()


def _header(record: InboundRecord, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return value.decode(errors="replace")
    return None


def render(record: InboundRecord, wanted: TailFilter, as_json: bool) -> str | None:
    """The line to print for ``record``, or None if the filter drops it.

    Raises ``msgspec.DecodeError`` (a ``ValueError``) if the value is not a MarginEvent.
    """
    verdict = wanted.admits_record(record)
    if verdict is False:
        return None
    if _header(record, "type") == "margin_parameters":  # dynamic margin, not an account's
        if wanted.accounts:
            return None
        change = _decode_parameters(record.value or b"")
        return _encode(change).decode() if as_json else format_parameters(change)
    event = _decode(record.value or b"")
    if verdict is None and not wanted.admits_event(event):
        return None
    return _encode(event).decode() if as_json else format_event(event)


def format_parameters(change: MarginParameters) -> str:
    """One readable line for a dynamic-margin parameter change."""
    when = datetime.fromtimestamp(change.ts / 1000, tz=UTC)
    stamp = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    limited = ",".join(change.limited_by) or "-"
    return (
        f"{stamp}  margin_parameters     {change.underlying}  "
        f"scale={change.previous_scale:.4f}->{change.scale:.4f}  vol={change.volatility:.4f}  "
        f"ref={change.reference_vol:.4f}  limited_by={limited}  "
        f"instruments={','.join(change.instruments)}"
    )


def format_event(event: MarginEvent) -> str:
    """One readable line: time, type, account, equity, IM, MM, ratio, trigger, positions."""
    when = datetime.fromtimestamp(event.detected_ts / 1000, tz=UTC)
    account = event.account if event.symbol is None else f"{event.account}[{event.symbol}]"
    parts = [
        when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{event.detected_ts % 1000:03d}Z",
        f"{event.type:<20}",
        account,
        f"equity={_money(event.equity)}",
        f"IM={_money(event.initial_margin)}",
        f"MM={_money(event.maintenance_margin)}",
        f"ratio={_ratio(event.margin_ratio)}",
        f"trigger={event.trigger}",
    ]
    if event.shortfall:
        parts.append(f"shortfall={_money(event.shortfall)}")
    if event.positions:
        shown = [_position(p) for p in event.positions[:_SHOWN_POSITIONS]]
        hidden = len(event.positions) - _SHOWN_POSITIONS
        parts.append("positions=" + ", ".join(shown) + (f" (+{hidden} more)" if hidden > 0 else ""))
    if event.reductions:
        parts.append("reduce=" + ", ".join(f"{r.symbol} {r.qty:g}" for r in event.reductions))
    return "  ".join(parts)


def _money(value: float) -> str:
    return f"{value:,.2f}" if math.isfinite(value) else str(value)


def _ratio(value: float | None) -> str:
    """MM / equity; None (the wire's null) means equity <= 0: infinite."""
    return f"{value:.3f}" if value is not None and math.isfinite(value) else "inf"


def _position(position: PositionRisk) -> str:
    text = f"{position.symbol} {position.qty:+g}@{position.mark_price:g}"
    if position.liquidation_price is not None:
        text += f" liq {position.liquidation_price:.6g}"
    if position.mark_iv is not None:  # an option: its vol and delta
        text += f" iv {position.mark_iv:.1%}"
    if position.greeks is not None:
        text += f" delta {position.greeks.delta:+.3g}"
    return text


async def tail_events(
    kafka: KafkaSettings,
    topic: str,
    write: Callable[[str], None],
    *,
    wanted: TailFilter = _EVERYTHING,
    as_json: bool = False,
    from_beginning: bool = False,
    max_events: int | None = None,
    on_ready: Callable[[int], None] | None = None,
    on_skip: Callable[[InboundRecord, str], None] | None = None,
) -> int:
    """Print (``write``) every event of ``topic`` that passes ``wanted``; return how many.

    Reads all partitions from their end (``from_beginning``: their start), without a
    consumer group, until cancelled or after ``max_events``. ``on_ready`` gets the
    partition count once the start offsets are fixed: events produced after that are
    shown. ``on_skip`` gets each record that is not a MarginEvent and why.
    """
    from aiokafka import AIOKafkaConsumer

    from streams.settings import client_kwargs
    from streams.table_consumer import topic_partitions

    partitions = await topic_partitions(kafka, topic)
    consumer: Any = AIOKafkaConsumer(
        **client_kwargs(kafka),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    printed = 0
    try:
        consumer.assign(partitions)
        if from_beginning:
            await consumer.seek_to_beginning(*partitions)
        else:
            await consumer.seek_to_end(*partitions)
        for tp in partitions:  # resolve the offsets now, so "ready" means it
            await consumer.position(tp)
        if on_ready is not None:
            on_ready(len(partitions))
        while max_events is None or printed < max_events:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    try:
                        line = render(record, wanted, as_json)
                    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                        if on_skip is not None:
                            on_skip(record, str(exc))
                        continue
                    if line is None:
                        continue
                    write(line)
                    printed += 1
                    if max_events is not None and printed >= max_events:
                        return printed
    finally:
        await consumer.stop()
    return printed
