"""Decoding and screening of the monitor's input batches.

Per record the work is one decode and one append; then bad records become DLQ
records (counted and logged) and the ticks pass the price guards. What a message's
acceptance depends on is checked by the engine's own rules (``shape_problem``), so
the service and the engine never disagree about what is valid. On top of those, the
intake bounds what depends on a clock (``ts_out_of_range``): a tick may be stamped at
most ``service.max_clock_skew_s`` ahead of this host's clock, a ledger event at most
that far ahead of its Kafka record time (fixed once written, so a replay judges it the
same way), and no value may be longer than ``service.max_record_bytes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from operator import attrgetter
from typing import Final

import numpy as np
import structlog

from monitor.changelog import batch_ends
from monitor.config import ServiceSettings
from monitor.engine import MAX_PRICE, MAX_TS_MS, Engine, shape_problem
from monitor.guards import PriceGuard
from monitor.metrics import Metrics
from monitor.partitions import AccountPartitions
from monitor.schema import LedgerEvent, PriceTick
from streams import InboundRecord, JsonCodec, OutboundRecord, Rejection, TopicPartition, to_dlq

__all__ = ["PRICE_CHUNK", "PROCESSING_ERROR", "TS_OUT_OF_RANGE", "Intake", "PricePoll"]

log = structlog.get_logger("liqmon.intake")

TS_OUT_OF_RANGE = "ts_out_of_range"
PROCESSING_ERROR = "processing_error"  # the engine could not book a ledger event
#: Price records polled and decoded at a time (``PricePoll``): about 8 MB of Kafka records.
PRICE_CHUNK: Final = 20_000


class PricePoll:
    """The price records one cycle takes, decoded chunk by chunk as they were polled
    (:meth:`Intake.take_prices`), so a cycle of 200,000 ticks never holds 200,000 Kafka
    records (about 390 bytes each against 100 for a decoded tick).

    ``chunks`` are each chunk's ticks with their records, or None where the records
    were let go (every tick passed the checks when taken); ``rejections`` the records
    that did not decode; ``count`` every record taken; ``ends`` each partition's next
    offset after them."""

    __slots__ = ("chunks", "count", "ends", "rejections")

    def __init__(self) -> None:
        self.chunks: list[tuple[list[PriceTick], list[InboundRecord] | None]] = []
        self.rejections: list[Rejection] = []
        self.count = 0
        self.ends: dict[int, int] = {}

    def __bool__(self) -> bool:
        return self.count > 0

    def batch_ends(self) -> tuple[tuple[int, int], ...]:
        """``(partition, next offset)`` of each partition taken (as ``batch_ends``)."""
        return tuple(self.ends.items())


class Intake:
    """Turns consumed records into engine input and dead letters."""

    def __init__(self, service: ServiceSettings, dlq_topic: str, metrics: Metrics) -> None:
        self.guard = PriceGuard(int(service.max_price_age_s * 1000), service.price_band)
        self.prices: dict[str, PriceTick] = {}  # the newest accepted tick per symbol
        # Below which offsets bad price records were dead-lettered by an earlier run
        # (liqmon-state), so a restart re-reading the table does not dead-letter them again.
        self._dead_lettered_before: dict[TopicPartition, int] = {}
        self._dlq_topic = dlq_topic
        self._metrics = metrics
        self._skew_ms = round(service.max_clock_skew_s * 1000)
        self._max_bytes = service.max_record_bytes
        self._max_dlq_bytes = service.max_dlq_value_bytes
        self._ticks = JsonCodec(PriceTick)
        self._ledger: JsonCodec[LedgerEvent] = JsonCodec(LedgerEvent)

    def restore(self, references: list[PriceTick], screened: Mapping[TopicPartition, int]) -> None:
        """Resume from the last run: its accepted marks and how far it dead-lettered prices."""
        self.guard.restore(references)
        for tick in references:
            self.prices.setdefault(tick.symbol, tick)
        self._dead_lettered_before = dict(screened)

    def take_prices(
        self, poll: PricePoll, records: list[InboundRecord], engine: Engine, now_ms: int
    ) -> None:
        """Decode a chunk of price records into ``poll`` as it is polled. When every tick
        of the chunk passes the checks a later cycle would make (:func:`_plausible`, at
        this clock: the cycle's is later and accepts what this one does), the records go
        now and the cycle takes the ticks as they are; otherwise the cycle checks each
        of them with its own clock, as it would have."""
        batch = self._ticks.decode_batch(records, self._max_bytes)
        poll.rejections.extend(batch.rejections)
        poll.count += len(records)
        poll.ends.update(batch_ends(records))  # by bisection, not one read per record
        checked = _plausible(batch.items, engine, now_ms + self._skew_ms)
        poll.chunks.append((batch.items, None if checked else batch.records))

    def price_records(
        self, records: list[InboundRecord], engine: Engine, now_ms: int
    ) -> tuple[list[PriceTick], list[OutboundRecord]]:
        """:meth:`price_batch` of ``records`` taken in one go at the cycle's own clock
        (``liqmon replay``, which re-forms a cycle from its records)."""
        poll = PricePoll()
        self.take_prices(poll, records, engine, now_ms)
        return self.price_batch(poll, engine, now_ms)

    def price_batch(
        self, poll: PricePoll, engine: Engine, now_ms: int
    ) -> tuple[list[PriceTick], list[OutboundRecord]]:
        """The ticks of ``poll`` the checks and the guards accept, and dead letters for
        the bad ones."""
        rejected = list(poll.rejections)
        good: list[PriceTick] = []
        latest_ms = now_ms + self._skew_ms
        book = engine.book
        for items, records in poll.chunks:
            if records is None or _plausible(items, engine, latest_ms):
                good.extend(items)
                continue
            for tick, record in zip(items, records, strict=True):
                reason = shape_problem(book, tick)
                if reason is None and tick.ts > latest_ms:
                    reason = TS_OUT_OF_RANGE
                if reason is None:
                    good.append(tick)
                else:
                    rejected.append(Rejection.of(record, reason, f"price tick of {tick.symbol!r}"))
        decision = self.guard.screen(good, now_ms)
        metrics = self._metrics
        for tick, reason in decision.held:
            metrics.prices_held.labels(reason).inc()
            log.warning(
                "price held", symbol=tick.symbol, price=tick.mark_price, ts=tick.ts, reason=reason
            )
        for tick in decision.expired:
            metrics.price_holds_expired.inc()
            log.warning(
                "held price expired unconfirmed",
                symbol=tick.symbol,
                price=tick.mark_price,
                ts=tick.ts,
            )
        metrics.ticks_conflated.inc(decision.conflated)
        metrics.held_prices.set(self.guard.held_count)
        for tick in decision.accepted:
            self.prices[tick.symbol] = tick
        fresh = [r for r in rejected if r.offset >= self._dead_lettered_before.get(_tp(r), 0)]
        if len(fresh) < len(rejected):
            metrics.dlq_repeats_skipped.inc(len(rejected) - len(fresh))
        return list(decision.accepted), self.dead_letters(fresh)

    def failed(
        self,
        items: list[LedgerEvent],
        records: list[InboundRecord],
        failures: list[tuple[int, str]],
    ) -> list[Rejection]:
        """Dead letters for the ledger events the engine failed to book (``failures``:
        index into ``items`` and ``records``, and the error; see ``Engine.apply``)."""
        rejections = []
        for index, error in failures:
            item, record = items[index], records[index]
            self._metrics.processing_errors.inc()
            log.error(
                "ledger event failed; dead-lettered, the monitor goes on",
                account=item.account,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                error=error,
            )
            rejections.append(Rejection.of(record, PROCESSING_ERROR, error))
        return rejections

    def ledger_batch(
        self,
        records: list[InboundRecord],
        engine: Engine,
        partitions: AccountPartitions,
    ) -> tuple[list[LedgerEvent], list[InboundRecord], list[Rejection]]:
        """Decode ledger events, reject malformed ones, note each account's partition
        (``partitions.settle`` once the engine has booked them).

        Returns the good events, the record of each, and the rejections. Only problems of
        the message itself are checked here. Whether an isolated-margin adjustment fits
        the book depends on the events before it in the same batch, so the engine judges
        that in order and counts what it skips (``ledger_events_ignored``).
        """
        batch = self._ledger.decode_batch(records, self._max_bytes)
        rejected = batch.rejections
        good: list[LedgerEvent] = []
        good_records: list[InboundRecord] = []
        book = engine.book
        skew = self._skew_ms
        for item, record in zip(batch.items, batch.records, strict=True):
            reason = shape_problem(book, item)
            if reason is None and record.timestamp >= 0 and item.ts > record.timestamp + skew:
                reason = TS_OUT_OF_RANGE
            if reason is None:
                good.append(item)
                good_records.append(record)
                partitions.note(item.account, record.partition)
            else:
                rejected.append(Rejection.of(record, reason, f"account {item.account!r}"))
        return good, good_records, rejected

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
        return [to_dlq(r, self._dlq_topic, self._max_dlq_bytes) for r in rejected]


def _tp(rejection: Rejection) -> TopicPartition:
    return TopicPartition(rejection.topic, rejection.partition)


_MARK = attrgetter("mark_price")
_TS = attrgetter("ts")
_SYMBOL = attrgetter("symbol")


def _plausible(ticks: list[PriceTick], engine: Engine, latest_ms: int) -> bool:
    """True if no tick can have a problem: every price finite, positive and in range,
    every timestamp in range (checked as arrays) and every distinct symbol known.
    Otherwise the caller checks each tick to find and name the bad ones."""
    if not ticks:
        return True
    # min/max carry a NaN through, and a NaN compares false: one test covers all three.
    prices = np.fromiter(map(_MARK, ticks), np.float64, len(ticks))
    if not (prices.min() > 0.0 and prices.max() <= MAX_PRICE):
        return False
    # As floats: a timestamp beyond int64 must not overflow the check itself, and every
    # millisecond up to MAX_TS_MS is exact in float64.
    stamps = np.fromiter(map(_TS, ticks), np.float64, len(ticks))
    if not (stamps.min() >= 0.0 and stamps.max() <= min(latest_ms, MAX_TS_MS)):
        return False
    book = engine.book
    return all(
        symbol in book.instrument_index or symbol in book.assets.price_symbols
        for symbol in set(map(_SYMBOL, ticks))
    )
