"""`liqmon replay`: recorded input through the engine, as fast as it goes.

From Kafka, the cycles come from the run's cycle records (``liqmon-state``) when it wrote
them (``service.record_cycles``): each replayed cycle holds exactly the records, clock and
solvency steps of the live one, so the events come out with the same ids and figures.
Without them (files, older runs, boundaries compacted away) replay cuts its own cycles and
says so: the events are then equally valid, but a margin call passed inside a different
batch may show as ``collapsed``, and clocks differ.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path

import msgspec

from monitor.config import Settings
from monitor.errors import InputError
from monitor.replay._compare import Scope
from monitor.replay._files import read_input_file
from monitor.replay._kafka import (
    Feed,
    OnWait,
    RecordedState,
    check_offset,
    offset_ranges,
    read_all,
    read_state,
)
from monitor.replay._pipeline import Pipeline, Published
from monitor.replay._plan import Step, own_steps, recorded_steps, recorded_until, run_gaps
from monitor.schema import CycleInput, Instrument
from streams import InboundRecord, TopicPartition

__all__ = ["ReplayOptions", "ReplayResult", "replay"]

Progress = Callable[[int, int], None]
"""Called after each cycle with (cycles done, cycles in all; 0 when not known)."""


class ReplayOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What to replay. ``files``: read them instead of Kafka. ``run``: which recorded run
    (default: the first). ``own_batching``: ignore recorded cycles. ``start_*``: events
    of cycles before are not written (the cycles still run, so states are right);
    ``end_*``: stop before the first cycle at or past it. Offsets are per partition."""

    files: tuple[Path, ...] = ()
    run: str | None = None
    own_batching: bool = False
    cycle_ms: int = 100
    start_ms: int | None = None
    end_ms: int | None = None
    start_offsets: dict[TopicPartition, int] = {}
    end_offsets: dict[TopicPartition, int] = {}


class ReplayResult(msgspec.Struct, kw_only=True):
    """What replay published, how it formed cycles, and which clocks its events span."""

    published: list[Published]
    cycles: int
    batching: str
    notes: list[str]
    first_ms: int | None = None
    last_ms: int | None = None
    partial: bool = False  # only part of what the topics hold was replayed
    # Whose events the replayed instance published when (None: all of them, it owned
    # every ledger partition throughout).
    scope: Scope | None = None


async def replay(
    settings: Settings,
    instruments: Sequence[Instrument],
    options: ReplayOptions,
    progress: Progress | None = None,
    on_wait: OnWait | None = None,
) -> ReplayResult:
    """Replay ``options``' input; return what the monitor would have published.
    ``on_wait`` hears when reading waits for a transaction left open to end."""
    topics = settings.topics
    notes: list[str] = []
    if options.files:
        steps, total, batching = _file_steps(settings, options)
        return _drive(settings, instruments, steps, total, batching, notes, options, progress)
    ranges = await offset_ranges(settings.kafka, (topics.prices, topics.fills), on_wait)
    for tp, offset in (*options.start_offsets.items(), *options.end_offsets.items()):
        check_offset(ranges, tp, offset)
    state = (
        None if options.own_batching else await read_state(settings.kafka, topics.state, on_wait)
    )
    runs = state.runs if state is not None else {}
    cycles = _chosen_run(runs, options.run, notes)
    if cycles and cycles[0].seq > 0:
        notes.append(
            f"the first {cycles[0].seq} cycle records of run {cycles[0].run} are gone "
            "(compacted): using replay's own batching"
        )
        cycles = []
    elif cycles and run_gaps(cycles):
        notes.append(
            f"{run_gaps(cycles)} cycle records of run {cycles[0].run} are missing (cycles "
            "aborted with their transaction): their input joins the next replayed cycle"
        )
    if cycles and _resumed(cycles):
        notes.append(
            f"run {cycles[0].run} resumed from an earlier run's state: replay takes it from "
            f"{topics.state} as of then, and rebuilds the book from the whole ledger"
        )

    async def ledger_until(until: dict[TopicPartition, int]) -> list[InboundRecord]:
        found = await read_all(settings.kafka, until)
        return [record for tp in sorted(found) for record in found[tp]]

    if cycles:
        feed = Feed(settings.kafka, recorded_until(cycles, topics.prices, topics.fills))
        try:
            return await _drive_async(
                settings,
                instruments,
                recorded_steps(cycles, feed, topics.prices, topics.fills, ledger_until),
                len(cycles),
                f"recorded cycles of run {cycles[0].run}",
                notes,
                options,
                progress,
                # A live monitor may be ahead of what was read: compare its span only.
                partial=True,
                ledger=frozenset(tp for tp in ranges if tp.topic == topics.fills),
                history=state,
            )
        finally:
            await feed.close()
    if not options.own_batching and not options.run:
        notes.append(
            f"{topics.state} holds no cycle records (service.record_cycles off, or an older "
            "monitor): replay forms its own cycles, so events may differ from the live ones"
        )
    records = await read_all(settings.kafka, {tp: end for tp, (_, end) in ranges.items()})
    sources = [[(r.timestamp, r) for r in found] for found in records.values()]
    owned = frozenset(tp for tp in ranges if tp.topic == topics.fills)
    steps = own_steps(
        sources,
        topics.fills,
        owned,
        cycle_ms=options.cycle_ms,
        max_records=settings.service.max_price_batch,
    )
    batching = f"own batching ({options.cycle_ms} ms of record time per cycle)"
    return _drive(settings, instruments, steps, 0, batching, notes, options, progress)


def _chosen_run(
    runs: Mapping[str, list[CycleInput]], wanted: str | None, notes: list[str]
) -> list[CycleInput]:
    if wanted is not None:
        if wanted not in runs:
            known = ", ".join(runs) or "none"
            raise InputError(f"no cycle records of run {wanted!r} (runs recorded: {known})")
        return runs[wanted]
    if not runs:
        return []
    first = next(iter(runs))
    if len(runs) > 1:
        notes.append(
            f"{len(runs)} runs recorded (restarts or several instances): replaying the first, "
            f"{first}; choose "
            f"another with --run ({', '.join(list(runs)[1:])}); events are compared over "
            "its span only"
        )
    return runs[first]


def _resumed(cycles: Sequence[CycleInput]) -> bool:
    """Whether the run took over state from an earlier one: its first rebuild resumed past
    offset 0 (replay then takes the changelog as of then, and the ledger before)."""
    rebuild = next((c for c in cycles if c.phase == "rebuild"), None)
    return rebuild is not None and any(offset for _, offset in rebuild.ledger)


def _file_steps(settings: Settings, options: ReplayOptions) -> tuple[Iterable[Step], int, str]:
    topics = settings.topics
    sources = []
    for path in options.files:
        records = read_input_file(path, topics.prices, topics.fills)
        sources.append([(r.ts, r) for r in records])
    steps = own_steps(
        sources,
        topics.fills,
        frozenset({TopicPartition(topics.fills, 0)}),
        cycle_ms=options.cycle_ms,
        max_records=settings.service.max_price_batch,
    )
    return steps, 0, f"own batching ({options.cycle_ms} ms of event time per cycle)"


class _Window:
    """Which cycles count (``start_*``) and where to stop (``end_*``)."""

    def __init__(self, options: ReplayOptions) -> None:
        self._options = options
        self.open = options.start_ms is None and not options.start_offsets
        self.partial = not self.open or options.end_ms is not None or bool(options.end_offsets)

    def ends_before(self, step: Step) -> bool:
        o = self._options
        if o.end_ms is not None and step.now_ms >= o.end_ms:
            return True
        return any(o.end_offsets.get(tp, 2**62) < end for tp, end in step.reach().items())

    def opens_at(self, step: Step) -> bool:
        o = self._options
        if not self.open:
            at_time = o.start_ms is not None and step.now_ms >= o.start_ms
            reach = step.reach().items()
            self.open = at_time or any(o.start_offsets.get(tp, 2**62) < e for tp, e in reach)
        return self.open


class _Driver:
    def __init__(
        self,
        settings: Settings,
        instruments: Sequence[Instrument],
        options: ReplayOptions,
        progress: Progress | None,
        total: int,
        history: RecordedState | None = None,
    ) -> None:
        self.pipeline = Pipeline(settings, instruments)
        self._history = history
        self.window = _Window(options)
        self.published: list[Published] = []
        self.first_ms: int | None = None
        self.last_ms: int | None = None
        self.done = 0
        self._progress = progress
        self._total = total
        self._started = False

    def step(self, step: Step) -> bool:
        """Run one cycle; False once the end is reached."""
        if self.window.ends_before(step):
            return False
        p = self.pipeline
        if not self._started:
            h = self._history
            p.start(step.now_ms, h.at(step.now_ms) if h is not None else None)
            self._started = True
        if step.phase == "prices":
            output = p.prices_only(step.prices, step.now_ms)
        elif step.phase == "rebuild":
            h = self._history
            states = h.at(step.now_ms).states if h is not None else None
            output = p.rebuild(step.ledger, step.owned, step.now_ms, states)
        elif step.phase in ("revoke", "assign"):
            output = p.revoke(step.owned, step.now_ms)
        else:
            output = p.cycle(
                step.prices,
                step.ledger,
                step.now_ms,
                stress_taken=step.stress_taken,
                stress_started=step.stress_started,
            )
        if self.window.opens_at(step):
            self.published.extend(output)
            self.first_ms = step.now_ms if self.first_ms is None else self.first_ms
            self.last_ms = step.now_ms
        self.done += 1
        if self._progress is not None:
            self._progress(self.done, self._total)
        return True

    def result(
        self,
        batching: str,
        notes: list[str],
        partial: bool,
        ledger: frozenset[TopicPartition] | None = None,
    ) -> ReplayResult:
        """What was replayed; ``ledger``: every partition of the ledger topic, to tell
        whether the replayed instance owned them all."""
        p = self.pipeline
        # Before its first assignment an instance owns nothing and publishes no account
        # event anyway: only what it owned from then on decides.
        since = [owned for _, owned in p.ownership[1:]]
        while since and not since[0]:
            since.pop(0)
        scoped = ledger is not None and any(owned != ledger for owned in since)
        first = TopicPartition(p.settings.topics.fills, 0)
        return ReplayResult(
            scope=Scope(p.ownership, p.partition_of, first) if scoped else None,
            published=self.published,
            cycles=self.done,
            batching=batching,
            notes=notes,
            first_ms=self.first_ms,
            last_ms=self.last_ms,
            partial=partial or self.window.partial,
        )


def _drive(
    settings: Settings,
    instruments: Sequence[Instrument],
    steps: Iterable[Step],
    total: int,
    batching: str,
    notes: list[str],
    options: ReplayOptions,
    progress: Progress | None,
) -> ReplayResult:
    driver = _Driver(settings, instruments, options, progress, total)
    empty = True
    for step in steps:
        empty = False
        if not driver.step(step):
            break
    if empty:
        raise InputError("nothing to replay: the input holds no prices or ledger records")
    if driver.done == 0:
        raise InputError("nothing to replay before --end / --end-offset; check the range")
    return driver.result(batching, notes, partial=False)


async def _drive_async(
    settings: Settings,
    instruments: Sequence[Instrument],
    steps: AsyncIterator[Step],
    total: int,
    batching: str,
    notes: list[str],
    options: ReplayOptions,
    progress: Progress | None,
    *,
    partial: bool,
    ledger: frozenset[TopicPartition],
    history: RecordedState | None,
) -> ReplayResult:
    driver = _Driver(settings, instruments, options, progress, total, history)
    async for step in steps:
        if not driver.step(step):
            break
    result = driver.result(batching, notes, partial, ledger)
    if result.scope is not None:
        notes.append(
            f"the run did not own all {len(ledger)} ledger partitions throughout (one "
            "instance of several, or a rebalance): the events it published are compared"
        )
    return result
