"""What a cycle did and what the book holds, as metrics: the service's one exporter.

The loop calls :meth:`Observer.cycle` after each commit, :meth:`Observer.book` every
second, and every ``service.book_metrics_interval_s`` it has :meth:`Observer.book_figures`
computed in a worker thread; none reads a clock or Kafka (the caller passes ``now_ms``
and the lags).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from monitor.dynamic import DynamicMargin
from monitor.engine import Engine, Exposure, exposure
from monitor.guards import PriceGuard
from monitor.metrics import Metrics
from monitor.schema import AccountState, LedgerEvent, MarginEvent, PriceTick
from streams import InboundRecord
from streams.settings import TopicSettings

__all__ = ["BookFigures", "Observer"]


class BookFigures(NamedTuple):
    """The book-wide gauges' values, computed off the event loop."""

    states: dict[AccountState, int]
    positions: dict[str, int]
    exposure: Exposure
    fund_asset_values: dict[str, float]  # valuation-asset value of one unit of each asset


class Observer:
    """Counts a cycle's work and sets the book's gauges."""

    def __init__(
        self, metrics: Metrics, topics: TopicSettings, insurance_fund: Mapping[str, float]
    ) -> None:
        self._metrics = metrics
        self._topics = topics
        self._fund = dict(insurance_fund)
        self._ignored_seen: dict[str, int] = {}  # engine.ignored already counted

    def rebuilt(self, engine: Engine) -> None:
        """A rebuilt engine's no-ops were replayed, counted by the run that saw them first."""
        self._ignored_seen = dict(engine.ignored)

    def cycle(
        self,
        engine: Engine,
        price_records: int,
        ledger: Sequence[InboundRecord],
        items: Sequence[LedgerEvent],
        ticks: Sequence[PriceTick],
        events: Sequence[MarginEvent],
        acked_ms: int,
    ) -> None:
        """Records consumed (``price_records``: how many price records the cycle took),
        ledger events applied and ignored, ticks and events."""
        m = self._metrics
        if price_records:
            m.records_consumed.labels(self._topics.prices).inc(price_records)
        if ledger:
            m.records_consumed.labels(self._topics.fills).inc(len(ledger))
        for kind, count in Counter(type(item) for item in items).items():
            m.ledger_events_applied.labels(kind.__struct_config__.tag).inc(count)
        for reason, count in engine.ignored.items():
            counted = self._ignored_seen.get(reason, 0)
            if count > counted:
                m.ledger_events_ignored.labels(reason).inc(count - counted)
                self._ignored_seen[reason] = count
        m.ticks_applied.inc(len(ticks))
        m.units_revalued.inc(engine.revalued_by_prices)
        self.published(events, acked_ms)

    def published(self, events: Sequence[MarginEvent], acked_ms: int) -> None:
        """Events by type, and each price-triggered one's tick-to-acknowledgement latency."""
        m = self._metrics
        for event_type, count in Counter(event.type for event in events).items():
            m.events_published.labels(event_type).inc(count)
        for event in events:
            if event.trigger == "price":
                m.tick_to_event_latency.observe(max(0.0, (acked_ms - event.trigger_ts) / 1000))

    def book(self, engine: Engine, dynamic: DynamicMargin, guard: PriceGuard, now_ms: int) -> None:
        """Volatility, margin scales and price ages (against ``now_ms``): cheap, every second.
        The book-wide figures come from :meth:`book_figures` and :meth:`book_figures_done`."""
        m = self._metrics
        for underlying, vol in dynamic.volatility().items():
            if vol == vol:  # NaN while warming up: no figure yet
                m.volatility.labels(underlying).set(vol)
        for underlying, scale in dynamic.exported_scales().items():
            m.margin_scale.labels(underlying).set(scale)
        for symbol, ts in guard.accepted_ts().items():
            m.price_age.labels(symbol).set(max(0.0, (now_ms - ts) / 1000))
        if guard.newest_ts > 0:
            m.price_feed_age.set(max(0.0, (now_ms - guard.newest_ts) / 1000))

    @staticmethod
    def book_figures(engine: Engine, pause: Callable[[], None] = lambda: None) -> BookFigures:
        """States, open positions and exposure of the whole book: array passes over every
        account and position (70 ms of work at a million accounts), so the service runs
        this in a worker thread while cycles go on, calling ``pause`` between passes and
        blocks of rows (``CycleGate.step_aside``: the thread waits there while a cycle
        runs). A pass that overlaps a cycle may mix figures from before and after it; the
        next one is consistent again."""
        states = engine.state_counts()
        pause()
        positions = engine.position_counts(pause)
        return BookFigures(
            states=states,
            positions=positions,
            exposure=exposure(engine, pause),
            fund_asset_values={
                a: float(engine.book.assets.value[i]) for a, i in engine.book.assets.index.items()
            },
        )

    def book_figures_done(self, figures: BookFigures) -> None:
        """Export what :meth:`book_figures` found."""
        m = self._metrics
        for state, count in figures.states.items():
            m.accounts.labels(state).set(count)
        for kind, count in figures.positions.items():
            m.open_positions.labels(kind).set(count)
        self._exposure(figures)

    def _exposure(self, figures: BookFigures) -> None:
        """Bad debt, liquidation exposure, open interest and the insurance fund."""
        m = self._metrics
        found = figures.exposure
        m.bad_debt_total.set(found.bad_debt)
        for underlying, debt in found.bad_debt_by_underlying.items():
            m.bad_debt.labels(underlying).set(debt)
        for underlying, exposed in found.liquidation_exposure_by_underlying.items():
            m.liquidation_exposure.labels(underlying).set(exposed)
        for symbol, interest in found.open_interest.items():
            m.open_interest.labels(symbol).set(interest)
        if self._fund:
            value = figures.fund_asset_values
            m.insurance_fund.set(sum(amount * value[a] for a, amount in self._fund.items()))
