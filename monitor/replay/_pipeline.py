"""The service's cycle without Kafka: the same intake, engine, dynamic margin and ADL
quantiles, fed recorded batches, returning what the service would have published.

Each method mirrors one step of :class:`monitor.service.Monitor` (catching up on prices,
rebuilding on an assignment, one poll's cycle), in the same order, so the same batches at
the same clock give the same events with the same ids. Nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import msgspec
import numpy as np
from numpy.typing import NDArray

from monitor.changelog import RestoredState
from monitor.config import Settings
from monitor.dynamic import DynamicMargin
from monitor.engine import (
    MAX_EVENT_BYTES,
    Engine,
    fit_positions,
    judge_all,
    restore_states,
    shape_problem,
    unit_record,
)
from monitor.intake import Intake
from monitor.metrics import Metrics
from monitor.partitions import AccountPartitions
from monitor.rescaling import publishes_parameters
from monitor.schema import (
    Instrument,
    LedgerEvent,
    MarginEvent,
    MarginParameters,
    PriceTick,
    UnitStates,
)
from monitor.solvency import account_quantiles, copy_book, state_of
from streams import InboundRecord, TopicPartition

__all__ = ["Pipeline", "Published"]

Published = MarginEvent | MarginParameters
"""What goes to ``margin-events``: account transitions and dynamic-margin parameter changes."""

_encode = msgspec.json.Encoder().encode
_REBUILD_BATCH = 10_000  # ledger records per silent apply, as recovery reads them


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
        self.partitions = AccountPartitions()  # of the accounts of self.engine's book
        self._quantiles = _Quantiles()
        self._fills = settings.topics.fills
        self.cycles = 0
        # Each account's states as the checkpoint wrote them (for a rebuild without the
        # changelog at hand).
        self.states: dict[str, UnitStates] = {}
        # Whose events the run published when: (clock, partitions owned from then on), and
        # every account's ledger partition, to scope a comparison with a shared topic.
        self.ownership: list[tuple[int, frozenset[TopicPartition]]] = [(0, frozenset())]
        self.partition_of: dict[str, TopicPartition] = {}

    def start(self, now_ms: int, changelog: RestoredState | None = None) -> None:
        """As the service starts: the volatility states and the price guard's marks the
        changelog held then (``changelog``; None: nothing, a fresh start), and the rates at
        the dynamic scales (``Monitor.run``, ``Recovery.resume_prices``)."""
        if changelog is not None:
            self.dynamic.restore(changelog.volatility.values())
        self.engine.rescale(self.dynamic.scales(), {}, now_ms, self.dynamic.range_scales())
        if changelog is None:
            return
        book = self.engine.book
        references = [
            t for t in changelog.price_references.values() if shape_problem(book, t) is None
        ]
        self.intake.restore(references, changelog.prices_screened)
        if references:
            self.engine.apply([], references, now_ms)

    def prices_only(self, records: Sequence[InboundRecord], now_ms: int) -> list[Published]:
        """A catch-up cycle: marks only, before any ledger partition is assigned."""
        self.cycles += 1
        ticks, _ = self.intake.price_records(list(records), self.engine, now_ms)
        self.engine.apply([], ticks, now_ms)
        return list(self._rescale(ticks, now_ms))

    def rebuild(
        self,
        ledger: Sequence[InboundRecord],
        owned: frozenset[TopicPartition],
        now_ms: int,
        states: Mapping[str, UnitStates] | None = None,
    ) -> list[Published]:
        """A fresh book for an assignment (``monitor.recovery``): the owned partitions'
        ledger up to where the run resumed (``ledger``, all of it) applied silently, the
        accounts' states as last written restored (``states``, the
        changelog's then; None: as this replay wrote them), then every unit judged at the
        current marks."""
        self.cycles += 1
        engine = Engine(self.instruments, self.settings.engine)
        engine.rescale(self.dynamic.scales(), {}, now_ms, self.dynamic.range_scales())
        if self.intake.prices:
            engine.apply([], list(self.intake.prices.values()), now_ms)
        partitions = AccountPartitions()
        history = [r for r in ledger if TopicPartition(r.topic, r.partition) in owned]
        for start in range(0, len(history), _REBUILD_BATCH):
            chunk = history[start : start + _REBUILD_BATCH]
            items, _, _ = self.intake.ledger_batch(chunk, engine, partitions)
            engine.apply(items, [], now_ms)
            partitions.settle(engine.book)
            self._note(engine, partitions, items)
        restore_states(engine, self.states if states is None else states)
        self.engine, self.partitions, self.owned = engine, partitions, owned
        self.ownership.append((now_ms, owned))
        events = [e for e in judge_all(engine, now_ms) if self._owns(e.account)]
        for account in dict.fromkeys(e.account for e in events):
            self.states[account] = unit_record(engine, account, now_ms)
        return [_fitted(e) for e in events]

    def revoke(self, owned: frozenset[TopicPartition], now_ms: int) -> list[Published]:
        """Partitions taken away (``revoke``), or given back without a rebuild
        (``assign``): whose events are published from now on."""
        self.cycles += 1
        self.owned = owned
        self.ownership.append((now_ms, owned))
        return []

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
        ticks, _ = intake.price_records(list(prices), engine, now_ms)
        items, _, _ = intake.ledger_batch(list(ledger), engine, self.partitions)
        output = engine.cycle(items, ticks, now_ms)
        self.partitions.settle(engine.book)
        self._note(engine, self.partitions, items)
        events = [e for e in output.events if self._owns(e.account)]
        self.states.update((s.account, s) for s in output.states if self._owns(s.account))
        published: list[Published] = [_fitted(e) for e in self._quantiles.attach(engine, events)]
        published.extend(self._rescale(ticks, now_ms))
        # (the service stresses only once its partitions are restored: the flags say so)
        self._quantiles.take(engine, taken=stress_taken, started=stress_started)
        return published

    def _owns(self, account: str) -> bool:
        partition = self.partitions.partition(self.engine.book, account)
        return partition is not None and TopicPartition(self._fills, partition) in self.owned

    def _note(
        self, engine: Engine, partitions: AccountPartitions, items: Sequence[LedgerEvent]
    ) -> None:
        """Keep every account's partition for the comparison's scope, across rebuilds."""
        for account in dict.fromkeys(item.account for item in items):
            partition = partitions.partition(engine.book, account)
            if partition is not None:
                self.partition_of[account] = TopicPartition(self._fills, partition)

    def _rescale(self, ticks: list[PriceTick], now_ms: int) -> list[Published]:
        changes, triggers = self.dynamic.observe(ticks, now_ms)
        if not changes:
            return []
        published: list[Published] = []
        if publishes_parameters(self._fills, self.owned):
            published.extend(changes)
        output = self.engine.rescale(
            self.dynamic.scales(), triggers, now_ms, self.dynamic.range_scales()
        )
        events = [e for e in output if self._owns(e.account)]
        for account in dict.fromkeys(e.account for e in events):
            self.states[account] = unit_record(self.engine, account, now_ms)
        published.extend(_fitted(e) for e in events)
        return published


def _fitted(event: MarginEvent) -> MarginEvent:
    """The event as the checkpoint writes it: positions cut to fit a Kafka record."""
    if len(_encode(event)) > MAX_EVENT_BYTES:
        return fit_positions(event, MAX_EVENT_BYTES, _encode)
    return event
