"""Decoding and screening of the monitor's input batches.

Per record the work is one decode and one append; then bad records become DLQ
records (counted and logged) and the ticks pass the price guards. What a message's
acceptance depends on is checked by the engine's own rules (``shape_problem``), so
the service and the engine never disagree about what is valid.
"""

from __future__ import annotations

from collections.abc import MutableMapping

import numpy as np
import structlog

from monitor.config import ServiceSettings
from monitor.engine import Engine, shape_problem
from monitor.guards import PriceGuard
from monitor.metrics import Metrics
from monitor.schema import LedgerEvent, PriceTick
from streams import InboundRecord, JsonCodec, OutboundRecord, Rejection, TopicPartition, to_dlq

__all__ = ["Intake"]

log = structlog.get_logger("liqmon.intake")


class Intake:
    """Turns consumed records into engine input and dead letters."""

    def __init__(self, service: ServiceSettings, dlq_topic: str, metrics: Metrics) -> None:
        self.guard = PriceGuard(int(service.max_price_age_s * 1000), service.price_band)
        self.prices: dict[str, PriceTick] = {}  # the newest accepted tick per symbol
        self._dlq_topic = dlq_topic
        self._metrics = metrics
        self._ticks = JsonCodec(PriceTick)
        self._ledger: JsonCodec[LedgerEvent] = JsonCodec(LedgerEvent)

    def price_batch(
        self, records: list[InboundRecord], engine: Engine
    ) -> tuple[list[PriceTick], list[OutboundRecord]]:
        """Decode ticks, dead-letter the bad ones, and keep what the guards accept."""
        batch = self._ticks.decode_batch(records)
        rejected = batch.rejections
        good = batch.items
        if not _plausible(good, engine):
            good = []
            book = engine.book
            for tick, record in zip(batch.items, batch.records, strict=True):
                reason = shape_problem(book, tick)
                if reason is None:
                    good.append(tick)
                else:
                    rejected.append(Rejection.of(record, reason, f"price tick of {tick.symbol!r}"))
        decision = self.guard.screen(good)
        metrics = self._metrics
        for tick, reason in decision.held:
            metrics.prices_held.labels(reason).inc()
            log.warning(
                "price held", symbol=tick.symbol, price=tick.mark_price, ts=tick.ts, reason=reason
            )
        metrics.ticks_conflated.inc(decision.conflated)
        metrics.held_prices.set(self.guard.held_count)
        for tick in decision.accepted:
            self.prices[tick.symbol] = tick
        return list(decision.accepted), self.dead_letters(rejected)

    def ledger_batch(
        self,
        records: list[InboundRecord],
        engine: Engine,
        partition_of: MutableMapping[str, TopicPartition],
    ) -> tuple[list[LedgerEvent], list[Rejection]]:
        """Decode ledger events, reject malformed ones, note each account's partition.

        Only problems of the message itself are checked here. Whether an isolated-margin
        adjustment fits the book depends on the events before it in the same batch, so the
        engine judges that in order and counts what it skips (``ledger_events_ignored``).
        """
        batch = self._ledger.decode_batch(records)
        rejected = batch.rejections
        good: list[LedgerEvent] = []
        book = engine.book
        for item, record in zip(batch.items, batch.records, strict=True):
            reason = shape_problem(book, item)
            if reason is None:
                good.append(item)
                partition_of[item.account] = TopicPartition(record.topic, record.partition)
            else:
                rejected.append(Rejection.of(record, reason, f"account {item.account!r}"))
        return good, rejected

    def dead_letters(self, rejected: list[Rejection]) -> list[OutboundRecord]:
        """DLQ records for ``rejected``, counted by reason and logged."""
        for rejection in rejected:
            self._metrics.dlq_records.labels(rejection.reason).inc()
            log.warning(
                "input dead-lettered",
                topic=rejection.topic,
                partition=rejection.partition,
                offset=rejection.offset,
                reason=rejection.reason,
                detail=rejection.detail[:200],
            )
        return [to_dlq(r, self._dlq_topic) for r in rejected]


def _plausible(ticks: list[PriceTick], engine: Engine) -> bool:
    """True if no tick can have a shape problem: every price finite and positive (checked
    as one array) and every distinct symbol known. Otherwise the caller checks each tick
    with ``shape_problem`` to find and name the bad ones."""
    prices = np.fromiter((tick.mark_price for tick in ticks), np.float64, len(ticks))
    if not (np.isfinite(prices).all() and (prices > 0.0).all()):
        return False
    book = engine.book
    return all(
        symbol in book.instrument_index or symbol in book.assets.price_symbols
        for symbol in {tick.symbol for tick in ticks}
    )
