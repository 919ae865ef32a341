"""The service's cycle without Kafka: the same intake, engine, dynamic margin and ADL
quantiles, fed recorded batches, returning what the service would have published.

Each method mirrors one step of :class:`monitor.service.Monitor` (catching up on prices,
rebuilding on an assignment, one poll's cycle), in the same order, so the same batches at
the same clock give the same events with the same ids. Nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec
import numpy as np
from numpy.typing import NDArray

from monitor.config import Settings
from monitor.dynamic import DynamicMargin
from monitor.engine import MAX_EVENT_BYTES, Engine, fit_positions, judge_all
from monitor.intake import Intake
from monitor.metrics import Metrics
from monitor.schema import Instrument, MarginEvent, MarginParameters, PriceTick
from monitor.solvency import account_quantiles, copy_book, state_of
from streams import InboundRecord, TopicPartition

__all__ = ["Pipeline", "Published"]

Published = MarginEvent | MarginParameters
"""What goes to ``margin-events``: account transitions and dynamic-margin parameter changes."""

_encode = msgspec.json.Encoder().encode


class _Quantiles:
    """The ADL quantiles the service attaches to events: computed from the book as copied
    when a stress started, shown from the cycle after the report was taken up."""

    def __init__(self) -> None:
        self._pending: tuple[Engine, NDArray[np.float64]] | None = None
        self._active: tuple[Engine, NDArray[np.float64]] | None = None

    def take(self, engine: Engine, *, taken: bool, started: bool) -> None:
        if taken and self._pending is not None:
            self._active, self._pending = self._pending, None
        if started:
            self._pending = (engine, account_quantiles(state_of(copy_book(engine))))

    def attach(self, engine: Engine, events: list[MarginEvent]) -> list[MarginEvent]:
        if self._active is None or self._active[0] is not engine or not events:
            return events
        index, quantiles = engine.book.account_index, self._active[1]
        found = []
        for event in events:
            ix = index.get(event.account)
            q = float(quantiles[ix]) if ix is not None and ix < quantiles.shape[0] else math.nan
            found.append(event if math.isnan(q) else msgspec.structs.replace(event, adl_quantile=q))
        return found


class Pipeline:
    """One monitor instance's judging, replayed; it owns the ``fills`` partitions of its
    last rebuild (none before: no account event is published, as in the service)."""

    def __init__(self, settings: Settings, instruments: Sequence[Instrument]) -> None:
        self.settings = settings
        self.instruments = tuple(instruments)
        self.metrics = Metrics()
        self.engine = Engine(self.instruments, settings.engine)
        self.dynamic = DynamicMargin(self.instruments, settings.dynamic)
        self.intake = Intake(settings.service, settings.topics.dlq, self.metrics)
        self.owned: frozenset[TopicPartition] = frozenset()
        self.account_partition: dict[str, TopicPartition] = {}
        self._quantiles = _Quantiles()
        self._fills = settings.topics.fills
        self.cycles = 0

    def start(self, now_ms: int) -> None:
        """As the service starts: the configured rates at the dynamic scales (fresh state)."""
        self.engine.rescale(self.dynamic.scales(), {}, now_ms, self.dynamic.range_scales())

    def prices_only(self, records: Sequence[InboundRecord], now_ms: int) -> list[Published]:
        """A catch-up cycle: marks only, before any ledger partition is assigned."""
        self.cycles += 1
        ticks, _ = self.intake.price_batch(list(records), self.engine, now_ms)
        self.engine.apply([], ticks, now_ms)
        return list(self._rescale(ticks, now_ms))

    def rebuild(
        self, ledger: Sequence[InboundRecord], owned: frozenset[TopicPartition], now_ms: int
    ) -> list[Published]:
        """A fresh book for an assignment: the ledger up to where the run resumed applied
        silently, then every unit judged at the current marks (``monitor.recovery``)."""
        self.cycles += 1
        engine = Engine(self.instruments, self.settings.engine)
        engine.rescale(self.dynamic.scales(), {}, now_ms, self.dynamic.range_scales())
        if self.intake.prices:
            engine.apply([], list(self.intake.prices.values()), now_ms)
        partitions: dict[str, TopicPartition] = {}
        if ledger:
            items, _, _ = self.intake.ledger_batch(list(ledger), engine, partitions)
            engine.apply(items, [], now_ms)
        self.engine, self.account_partition, self.owned = engine, partitions, owned
        events = [e for e in judge_all(engine, now_ms) if partitions.get(e.account) in owned]
        return [_fitted(e) for e in events]

    def cycle(
        self,
        prices: Sequence[InboundRecord],
        ledger: Sequence[InboundRecord],
        now_ms: int,
        *,
        stress_taken: bool = False,
        stress_started: bool = False,
    ) -> list[Published]:
        """One poll's cycle, as ``Monitor._cycle`` runs it."""
        self.cycles += 1
        intake, engine = self.intake, self.engine
        ticks, _ = intake.price_batch(list(prices), engine, now_ms)
        items, _, _ = intake.ledger_batch(list(ledger), engine, self.account_partition)
        output = engine.cycle(items, ticks, now_ms)
        events = [e for e in output.events if self._owns(e.account)]
        published: list[Published] = [_fitted(e) for e in self._quantiles.attach(engine, events)]
        published.extend(self._rescale(ticks, now_ms))
        # (the service stresses only once its partitions are restored: the flags say so)
        self._quantiles.take(engine, taken=stress_taken, started=stress_started)
        return published

    def _owns(self, account: str) -> bool:
        return self.account_partition.get(account) in self.owned

    def _rescale(self, ticks: list[PriceTick], now_ms: int) -> list[Published]:
        changes, triggers = self.dynamic.observe(ticks, now_ms)
        if not changes:
            return []
        published: list[Published] = []
        first = TopicPartition(self._fills, 0)
        if first in self.owned or not self.owned:
            published.extend(changes)
        output = self.engine.rescale(
            self.dynamic.scales(), triggers, now_ms, self.dynamic.range_scales()
        )
        published.extend(_fitted(e) for e in output if self._owns(e.account))
        return published


def _fitted(event: MarginEvent) -> MarginEvent:
    """The event as the checkpoint writes it: positions cut to fit a Kafka record."""
    if len(_encode(event)) > MAX_EVENT_BYTES:
        return fit_positions(event, MAX_EVENT_BYTES, _encode)
    return event
