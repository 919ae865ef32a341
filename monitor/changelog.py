"""The ``liqmon-state`` changelog: per-account margin states and ledger checkpoints.

Each cycle that changes an account's state publishes a :class:`UnitStates` record
(key ``account:<id>``) with its events, and a :class:`LedgerCheckpoint` (key
``checkpoint:<topic>:<partition>``) for every ledger partition it consumed, before
the ledger offsets are committed. The price guard's accepted marks
(:class:`PriceReference`, key ``price:<symbol>``) and how far the prices were
screened (:class:`PricesScreened`) go there too. The topic is compacted, so reading it
whole at start-up gives the newest record of each key. A record that does not decode is
skipped, logged by the caller and counted (``RestoredState.dropped``): the monitor wrote
it, so a foreign one cannot be trusted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import aclosing

import msgspec

from monitor.schema import (
    LedgerCheckpoint,
    PriceReference,
    PricesScreened,
    PriceTick,
    StateRecord,
    UnitStates,
)
from streams import InboundRecord, OutboundRecord, TopicPartition, read_history, topic_partitions
from streams.settings import KafkaSettings

__all__ = [
    "RestoredState",
    "checkpoint_records",
    "price_reference_records",
    "prices_screened_records",
    "read_changelog",
    "state_record",
]

_encode = msgspec.json.Encoder().encode
_decode_state = msgspec.json.Decoder(StateRecord).decode


class RestoredState(msgspec.Struct, kw_only=True):
    """What the changelog says: unit states by account and the next offset per ledger partition."""

    states: dict[str, UnitStates] = msgspec.field(default_factory=dict)
    checkpoints: dict[TopicPartition, int] = msgspec.field(default_factory=dict)
    price_references: dict[str, PriceTick] = msgspec.field(default_factory=dict)
    prices_screened: dict[TopicPartition, int] = msgspec.field(default_factory=dict)
    dropped: int = 0
    dropped_example: str = ""


def state_record(topic: str, record: UnitStates) -> OutboundRecord:
    """The changelog record of one account's unit states and transition counts."""
    return OutboundRecord(topic, f"account:{record.account}".encode(), _encode(record))


def checkpoint_records(topic: str, offsets: Mapping[TopicPartition, int]) -> list[OutboundRecord]:
    """One checkpoint record per consumed ledger partition (``offsets``: next offset)."""
    return [
        OutboundRecord(
            topic,
            f"checkpoint:{tp.topic}:{tp.partition}".encode(),
            _encode(LedgerCheckpoint(topic=tp.topic, partition=tp.partition, next_offset=offset)),
        )
        for tp, offset in offsets.items()
    ]


def price_reference_records(topic: str, ticks: Iterable[PriceTick]) -> list[OutboundRecord]:
    """The changelog records of the price guard's accepted ``ticks``."""
    return [
        OutboundRecord(
            topic,
            f"price:{tick.symbol}".encode(),
            _encode(PriceReference(symbol=tick.symbol, mark_price=tick.mark_price, ts=tick.ts)),
        )
        for tick in ticks
    ]


def prices_screened_records(
    topic: str, offsets: Mapping[TopicPartition, int]
) -> list[OutboundRecord]:
    """How far each prices partition has been screened (``offsets``: next offset)."""
    return [
        OutboundRecord(
            topic,
            f"prices-screened:{tp.topic}:{tp.partition}".encode(),
            _encode(PricesScreened(topic=tp.topic, partition=tp.partition, next_offset=offset)),
        )
        for tp, offset in offsets.items()
    ]


async def read_changelog(kafka: KafkaSettings, topic: str) -> RestoredState:
    """Read the whole changelog; the newest record of each key wins. Undecodable records
    are skipped and counted in ``dropped``."""
    restored = RestoredState()
    partitions = await topic_partitions(kafka, topic)
    until = dict.fromkeys(partitions, 2**62)  # capped at each partition's end
    async with aclosing(read_history(kafka, until)) as batches:
        async for batch in batches:
            _fold(restored, batch)
    return restored


def _fold(restored: RestoredState, records: Iterable[InboundRecord]) -> None:
    for record in records:
        if record.value is None:
            continue
        try:
            item = _decode_state(record.value)
        except msgspec.DecodeError as exc:
            restored.dropped += 1
            if not restored.dropped_example:
                where = f"{record.topic}[{record.partition}]@{record.offset}"
                restored.dropped_example = f"{where}: {exc}"
            continue
        if isinstance(item, UnitStates):
            restored.states[item.account] = item
        elif isinstance(item, LedgerCheckpoint):
            tp = TopicPartition(item.topic, item.partition)
            restored.checkpoints[tp] = item.next_offset
        elif isinstance(item, PriceReference):
            restored.price_references[item.symbol] = PriceTick(
                symbol=item.symbol, mark_price=item.mark_price, ts=item.ts
            )
        else:
            tp = TopicPartition(item.topic, item.partition)
            restored.prices_screened[tp] = item.next_offset
