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

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final, Literal, NamedTuple

import msgspec
import structlog

from monitor.book import Book
from monitor.changelog import batch_ends
from monitor.config import ServiceSettings
from monitor.engine import MAX_PRICE, MAX_TS_MS, MAX_VOLATILITY, Engine, shape_problem
from monitor.guards import Conflation, PriceGuard
from monitor.metrics import Metrics
from monitor.partitions import AccountPartitions
from monitor.schema import LedgerEvent, PriceTick
from streams import InboundRecord, JsonCodec, OutboundRecord, Rejection, TopicPartition, to_dlq

__all__ = [
    "PRICE_CHUNK",
    "PROCESSING_ERROR",
    "TS_OUT_OF_RANGE",
    "Intake",
    "PricePoll",
    "TakenChunk",
]

log = structlog.get_logger("liqmon.intake")

TS_OUT_OF_RANGE = "ts_out_of_range"
PROCESSING_ERROR = "processing_error"  # the engine could not book a ledger event
#: Price records polled and decoded at a time (``PricePoll``): about 8 MB of Kafka records.
PRICE_CHUNK: Final = 20_000


class TakenChunk(NamedTuple):
    """The ticks of one polled chunk: with their records while a tick may still fail a
    check, or with their conflation once every tick passed (``Conflation``: the records
    are let go). ``plain``: the ticks decoded as plain ticks (:func:`_book_codecs`: only
    the clock is left to check)."""

    ticks: Sequence[PriceTick]
    records: list[InboundRecord] | None
    conflation: Conflation | None
    plain: bool


class PricePoll:
    """The price records one cycle takes, decoded chunk by chunk as they were polled
    (:meth:`Intake.take_prices`), so a cycle of 200,000 ticks never holds 200,000 Kafka
    records (about 390 bytes each against 100 for a decoded tick).

    ``chunks`` are each chunk's ticks (``TakenChunk``); ``rejections`` the records that
    did not decode; ``count`` every record taken; ``ends`` each partition's next offset
    after them."""

    __slots__ = ("chunks", "count", "ends", "rejections")

    def __init__(self) -> None:
        self.chunks: list[TakenChunk] = []
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
        self._plain_book: Book | None = None  # the book whose symbols _codecs know
        self._codecs: _BookCodecs | None = None
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
        """Decode a chunk of price records into ``poll`` as it is polled.

        The chunk is first decoded as plain ticks of the book's symbols
        (:func:`_book_codecs`), whose decoding already checks the symbol, the price, the
        timestamp's range and that no ``mark_iv`` is given (or, for a book with options,
        that a volatility mark is in range, :func:`_marked_plainly` checking the rest).
        When that succeeds and no tick is stamped past the clock (:func:`_conflation`,
        at this one: the cycle's is later and accepts what this one does), the records
        go now and the cycle takes the ticks as they are, with their conflation for the
        guard. Otherwise the cycle checks the ticks again with its own clock: the
        chunk's clock when they decoded as plain ticks, each tick by the engine's rules
        (``shape_problem``) when not.
        """
        poll.count += len(records)
        poll.ends.update(batch_ends(records))  # by bisection, not one read per record
        if engine.book is not self._plain_book:  # a new engine (a rebuild): its symbols
            self._plain_book, self._codecs = engine.book, _book_codecs(engine.book)
        codecs = self._codecs
        plain = None
        if codecs is not None:
            values = [record.value for record in records]
            plain = codecs.plain.decode_all(values, self._max_bytes)
            if plain is None and codecs.marked is not None:  # an option's volatility mark?
                plain = codecs.marked.decode_all(values, self._max_bytes)
                plain = plain if _marked_plainly(plain, codecs.options) else None
        if plain is not None:
            checked = _conflation(plain, now_ms + self._skew_ms)
            kept = None if checked is not None else records
            poll.chunks.append(TakenChunk(plain, kept, checked, plain=True))
            return
        batch = self._ticks.decode_batch(records, self._max_bytes)
        poll.rejections.extend(batch.rejections)
        poll.chunks.append(TakenChunk(batch.items, batch.records, None, plain=False))

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
        # The chunks' conflations while every tick passes; None once one did not.
        runs: list[Conflation] | None = []
        latest_ms = now_ms + self._skew_ms
        book = engine.book
        for items, records, conflation, plain in poll.chunks:
            if records is not None and plain:  # checked again at the cycle's (later) clock
                conflation = _conflation(items, latest_ms)
            if conflation is not None:
                good.extend(items)
                if runs is not None:
                    runs.append(conflation)
                continue
            assert records is not None  # a chunk whose records went passed when taken
            runs = None  # the guard conflates what passes
            for tick, record in zip(items, records, strict=True):
                reason = shape_problem(book, tick)
                if reason is None and tick.ts > latest_ms:
                    reason = TS_OUT_OF_RANGE
                if reason is None:
                    good.append(tick)
                else:
                    rejected.append(Rejection.of(record, reason, f"price tick of {tick.symbol!r}"))
        if runs is not None:
            merged = Conflation.merged(runs)
        else:  # the guard's own conflation, made here to hand on price ticks, not plain ones
            merged = Conflation.of(good) if good else Conflation({}, 0)
        decision = self.guard.screen(good, now_ms, _priced(merged))
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


class _PlainTick(PriceTick, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """A price tick whose decoding already makes the engine's checks of a tick that is
    not an option's marked by volatility (``shape_problem``): a finite mark price in
    (0, MAX_PRICE], a timestamp in [0, MAX_TS_MS] and no ``mark_iv``; its subclass for
    a book (:func:`_book_codecs`) checks the symbol too. Left to check: the clock. Only
    the intake's batches see one; what goes on from a cycle is a :class:`PriceTick`
    (``_priced``)."""

    mark_price: Annotated[float, msgspec.Meta(gt=0.0, le=MAX_PRICE)]
    ts: Annotated[int, msgspec.Meta(ge=0, le=MAX_TS_MS)]
    mark_iv: None = None


class _MarkedTick(PriceTick, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """A plain tick that may be an option's marked by volatility: ``mark_iv`` in
    (0, MAX_VOLATILITY] and the mark price then 0, absent or in range. Left to check
    (:func:`_marked_plainly`): a tick with ``mark_iv`` is an option's, and one without
    has a price above 0."""

    mark_price: Annotated[float, msgspec.Meta(ge=0.0, le=MAX_PRICE)] = math.nan
    ts: Annotated[int, msgspec.Meta(ge=0, le=MAX_TS_MS)]
    mark_iv: Annotated[float, msgspec.Meta(gt=0.0, le=MAX_VOLATILITY)] | None = None


class _BookCodecs(NamedTuple):
    """The plain-tick codecs of one book: ``plain`` for ticks without ``mark_iv``,
    ``marked`` (when the book lists options) for chunks with an option's volatility
    mark, and the book's ``options``."""

    plain: JsonCodec[PriceTick]
    marked: JsonCodec[PriceTick] | None
    options: frozenset[str]


def _book_codecs(book: Book) -> _BookCodecs | None:
    """Codecs of plain ticks whose symbol is one of ``book``'s instruments, priced
    assets or options' underlyings (a ``Literal``: an unknown one fails the decoding,
    and a known one decodes as the book's own string, so no string is made per tick).
    None for a book with no symbol."""
    contracts = book.contracts
    symbols = sorted(
        {*book.instrument_index, *book.assets.price_symbols, *contracts.underlying_index}
    )
    if not symbols:
        return None
    known: Any = Literal.__getitem__(tuple(symbols))
    options = frozenset(book.symbols[ix] for ix in contracts.options.tolist())

    def codec(base: type[PriceTick], name: str) -> JsonCodec[PriceTick]:
        tick = msgspec.defstruct(
            name,
            [("symbol", known)],
            bases=(base,),
            frozen=True,
            kw_only=True,
            gc=False,
            omit_defaults=True,
        )
        made: JsonCodec[PriceTick] = JsonCodec(tick)
        return made

    marked = codec(_MarkedTick, "_KnownMarkedTick") if options else None
    return _BookCodecs(codec(_PlainTick, "_KnownTick"), marked, options)


def _marked_plainly(ticks: list[PriceTick] | None, options: frozenset[str]) -> bool:
    """Whether ``ticks`` (decoded as :class:`_MarkedTick` s) pass what their decoding
    did not check: a volatility mark only on an option, a price above 0 on every other."""
    if ticks is None:
        return False
    if not {tick.symbol for tick in ticks if tick.mark_iv is not None} <= options:
        return False
    return all(tick.mark_price > 0.0 for tick in ticks if tick.mark_iv is None)


def _priced(conflation: Conflation) -> Conflation:
    """``conflation`` with its last ticks as :class:`PriceTick` s: what the guard keeps
    and the engine books compares equal to a tick decoded or built anywhere else."""
    last = {
        symbol: tick if type(tick) is PriceTick else PriceTick(**msgspec.structs.asdict(tick))
        for symbol, tick in conflation.last.items()
    }
    return Conflation(last, conflation.newest)


def _conflation(ticks: Sequence[PriceTick], latest_ms: int) -> Conflation | None:
    """The conflation of plain ``ticks`` if none is stamped after ``latest_ms``;
    otherwise None (the caller then checks each tick, to find and name the bad ones)."""
    if not ticks:
        return Conflation({}, 0)
    conflation = Conflation.of(ticks)
    return conflation if conflation.newest <= latest_ms else None
