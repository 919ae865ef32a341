"""A running book rebuilt from Kafka for ``liqmon stress --from-state``, outside the group.

The book is rebuilt the way a monitor instance rebuilds it when the group assigns it the
ledger partitions (:class:`monitor.recovery.Recovery`): each partition's newest snapshot
in ``liqmon-state``, then the ledger after it (here up to the end of each partition, not
only to where the monitor got), then the unit states. Every partition of the ledger is
read, and no consumer joins the monitor's group or commits an offset, so a running
monitor is not disturbed. The marks are the newest tick of each instrument on the prices
topic (not screened by the price guard), or, for an instrument without one, the mark the
monitor last accepted (its price references in ``liqmon-state``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import aclosing

import msgspec

from monitor.config import Settings
from monitor.engine import Engine, shape_problem
from monitor.errors import InputError
from monitor.intake import Intake
from monitor.metrics import Metrics
from monitor.recovery import Recovery
from monitor.schema import Instrument, PriceTick
from streams import StreamsError, read_history, topic_partitions

__all__ = ["book_from_state"]

_END = 2**62  # an offset past every partition's end: read_history stops at the end
_decode_tick = msgspec.json.Decoder(PriceTick).decode


async def book_from_state(settings: Settings, instruments: Sequence[Instrument]) -> Engine:
    """The book of every ledger partition as ``liqmon-state`` and the ledger hold it now.

    Raises :class:`InputError` (one line) when a topic is missing or the state is empty.
    """
    topics = settings.topics
    for topic, role in ((topics.state, "state"), (topics.fills, "ledger")):
        try:
            await topic_partitions(settings.kafka, topic)
        except StreamsError:
            raise InputError(
                f"the {role} topic {topic!r} does not exist on {settings.kafka.bootstrap_servers}; "
                "point --config (or LIQMON_TOPICS__*) at the settings of the running monitor"
            ) from None
    metrics = Metrics()
    intake = Intake(settings.service, topics.dlq, metrics)
    now_ms = time.time_ns() // 1_000_000
    recovery = Recovery(settings, instruments, intake, metrics, lambda: now_ms)
    changelog = await recovery.read_changelog()
    if not (changelog.states or changelog.snapshot_raw or changelog.checkpoints):
        raise InputError(
            f"the state topic {topics.state!r} holds no book yet (no snapshot, unit state or "
            "ledger checkpoint): start `liqmon run` with these settings first"
        )
    book = Engine(instruments, settings.engine).book  # to screen ticks by shape only
    references = changelog.price_references.values()
    intake.restore([t for t in references if shape_problem(book, t) is None], {})
    for tick in (await _newest_ticks(settings)).values():
        known = intake.prices.get(tick.symbol)
        if shape_problem(book, tick) is None and (known is None or tick.ts >= known.ts):
            intake.prices[tick.symbol] = tick
    ledger = await topic_partitions(settings.kafka, topics.fills)
    rebuilt = await recovery.rebuild(frozenset(ledger), dict.fromkeys(ledger, _END))
    return rebuilt.engine


async def _newest_ticks(settings: Settings) -> dict[str, PriceTick]:
    """The newest decodable tick of each symbol on the prices topic (by event time)."""
    try:
        partitions = await topic_partitions(settings.kafka, settings.topics.prices)
    except StreamsError:
        raise InputError(
            f"the prices topic {settings.topics.prices!r} does not exist; point --config at "
            "the settings of the running monitor"
        ) from None
    newest: dict[str, PriceTick] = {}
    async with aclosing(read_history(settings.kafka, dict.fromkeys(partitions, _END))) as batches:
        async for batch in batches:
            for record in batch:
                if not record.value:
                    continue
                try:
                    tick = _decode_tick(record.value)
                except msgspec.DecodeError:
                    continue  # the monitor dead-letters it; it never priced anything
                known = newest.get(tick.symbol)
                if known is None or tick.ts >= known.ts:
                    newest[tick.symbol] = tick
    return newest
