"""How recorded input is cut into cycles: as the live service cut it (its cycle records),
or by replay's own batching (event-time windows) when no boundaries were recorded."""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from typing import NamedTuple

from monitor.replay._kafka import Feed
from monitor.schema import CycleInput, CyclePhase
from streams import InboundRecord, TopicPartition, next_offsets

__all__ = ["Step", "own_steps", "recorded_steps", "recorded_until", "run_gaps"]


class Step(NamedTuple):
    """One cycle to replay: its phase, clock and batches, and what the service did after
    it (solvency), as the cycle record says."""

    phase: CyclePhase
    now_ms: int
    prices: list[InboundRecord]
    ledger: list[InboundRecord]
    owned: frozenset[TopicPartition] = frozenset()
    stress_taken: bool = False
    stress_started: bool = False

    def reach(self) -> dict[TopicPartition, int]:
        """The offset after the last record the cycle read, per partition."""
        return next_offsets([*self.prices, *self.ledger])


def run_gaps(cycles: Sequence[CycleInput]) -> int:
    """How many cycles of a run have no record (compacted away, or aborted with their
    cycle's transaction)."""
    if not cycles:
        return 0
    return cycles[-1].seq + 1 - len({c.seq for c in cycles})


async def recorded_steps(
    cycles: Sequence[CycleInput],
    feed: Feed,
    prices_topic: str,
    fills_topic: str,
    ledger_until: Callable[[dict[TopicPartition, int]], Awaitable[list[InboundRecord]]],
) -> AsyncIterator[Step]:
    """The run's cycles with exactly the records each of its batches held, in its order.

    A rebuild gets the whole ledger of its partitions up to where it resumed
    (``ledger_until``, read afresh each time), as the monitor's rebuild replays it; the
    live consumer goes on from there, so the feed skips to it."""
    for cycle in cycles:
        prices: list[InboundRecord] = []
        for partition, end in cycle.prices:
            prices.extend(await feed.take(TopicPartition(prices_topic, partition), end))
        ledger: list[InboundRecord] = []
        for partition, end in cycle.ledger:
            ledger.extend(await feed.take(TopicPartition(fills_topic, partition), end))
        if cycle.phase == "rebuild":
            until = {TopicPartition(fills_topic, p): end for p, end in cycle.ledger if end}
            ledger = await ledger_until(until) if until else []
        yield Step(
            cycle.phase,
            cycle.now_ms,
            prices,
            ledger,
            frozenset(TopicPartition(fills_topic, p) for p in cycle.owned),
            cycle.stress_taken,
            cycle.stress_started,
        )


def recorded_until(
    cycles: Sequence[CycleInput], prices_topic: str, fills_topic: str
) -> dict[TopicPartition, int]:
    """How far each partition must be read for the run's cycles."""
    until: dict[TopicPartition, int] = {}
    for cycle in cycles:
        for topic, ends in ((prices_topic, cycle.prices), (fills_topic, cycle.ledger)):
            for partition, end in ends:
                tp = TopicPartition(topic, partition)
                until[tp] = max(until.get(tp, 0), end)
    return until


def own_steps(
    sources: Iterable[Sequence[tuple[int, InboundRecord]]],
    fills_topic: str,
    owned: frozenset[TopicPartition],
    *,
    cycle_ms: int,
    max_records: int,
) -> Iterator[Step]:
    """Replay's own batching: ``sources`` (each ``(event time, record)`` in its own order:
    a partition, a file) merged by time, cut into cycles of at most ``cycle_ms`` of event
    time and ``max_records`` records; a cycle's clock is the latest time in it. First an
    assignment of ``owned`` on an empty ledger, as a fresh monitor starts."""
    merged = heapq.merge(*sources, key=lambda item: item[0])
    first: int | None = None
    prices: list[InboundRecord] = []
    ledger: list[InboundRecord] = []
    started = latest = 0
    for ts, record in merged:
        if first is None:
            first = ts
            yield Step("rebuild", ts, [], [], owned)
            started = ts
        elif ts >= started + cycle_ms or len(prices) + len(ledger) >= max_records:
            if prices or ledger:
                yield Step("cycle", latest, prices, ledger)
            prices, ledger, started = [], [], ts
        (ledger if record.topic == fills_topic else prices).append(record)
        latest = max(latest, ts)
    if prices or ledger:
        yield Step("cycle", latest, prices, ledger)
