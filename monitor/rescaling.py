"""Dynamic margin inside a cycle: the step that may change rate scales and re-judge.

The cycle's accepted ticks feed the volatility estimator (:mod:`monitor.dynamic`). When
it changes an underlying's rate scale, the step says why on the ``margin_parameters``
events (one instance publishes them: the owner of the first ledger partition, since every
instance computes the same from the same price table), re-judges the holders at once
with the new scales and hands the cycle their transitions.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from monitor.checkpoint import Checkpoint
from monitor.dynamic import DynamicMargin
from monitor.engine import Engine, unit_record
from monitor.metrics import Metrics
from monitor.schema import MarginEvent, PriceTick
from streams import TopicPartition

__all__ = ["Rescaling", "publishes_parameters"]

log = structlog.get_logger("liqmon.service")


class Rescaling:
    """The dynamic-margin step of one monitor instance's cycles."""

    def __init__(
        self, dynamic: DynamicMargin, metrics: Metrics, checkpoint: Checkpoint, fills_topic: str
    ) -> None:
        self._dynamic = dynamic
        self._metrics = metrics
        self._checkpoint = checkpoint
        self._fills_topic = fills_topic

    def step(
        self,
        engine: Engine,
        ticks: list[PriceTick],
        now_ms: int,
        owned: frozenset[TopicPartition],
        owns: Callable[[str], bool],
    ) -> list[MarginEvent]:
        """Feed ``ticks`` to the volatility estimator; when a rate scale changes, add the
        ``margin_parameters`` events (if this instance publishes them: see
        :func:`publishes_parameters`) and the transitions of the re-judged holders that
        ``owns`` to the checkpoint. Returns those transitions."""
        changes, triggers = self._dynamic.observe(ticks, now_ms)
        if not changes:
            return []
        for change in changes:
            self._metrics.margin_parameter_changes.labels(change.underlying).inc()
            log.info(
                "margin parameters changed",
                underlying=change.underlying,
                scale=round(change.scale, 6),
                previous=round(change.previous_scale, 6),
                volatility=round(change.volatility, 6),
                limited_by=list(change.limited_by),
            )
        if publishes_parameters(self._fills_topic, owned):
            self._checkpoint.add_parameters(changes)
        dynamic = self._dynamic
        output = engine.rescale(dynamic.scales(), triggers, now_ms, dynamic.range_scales())
        events = [e for e in output if owns(e.account)]
        accounts = dict.fromkeys(e.account for e in events)
        self._checkpoint.add_events(events, [unit_record(engine, a, now_ms) for a in accounts])
        return events


def publishes_parameters(fills_topic: str, owned: frozenset[TopicPartition]) -> bool:
    """Whether the instance owning ``owned`` publishes the parameter events: it owns the
    first ledger partition, or none yet (start-up). Every instance computes the same
    scales from the same price table, so one publishes them (``liqmon replay`` too)."""
    return TopicPartition(fills_topic, 0) in owned or not owned
