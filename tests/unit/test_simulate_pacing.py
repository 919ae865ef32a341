"""Pacing and publishing order of `liqmon simulate`, against a fake producer and clock."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from pathlib import Path

import pytest

from monitor.instruments import load_instrument_file
from monitor.market import CrashSpec, MarketSpec, plan_accounts
from monitor.schema import Instrument
from monitor.simulate import Pacer, Progress, SimulationTarget, publish_simulation, tick_count
from streams.records import OutboundRecord

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "instruments.example.json"


class FakeClock:
    """Time that passes only when the code under test sleeps (or a send takes time)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


class RecordingSender:
    """Keeps every batch with the clock time it was sent; each send takes ``latency_s``."""

    def __init__(self, clock: FakeClock, latency_s: float = 0.0) -> None:
        self.clock = clock
        self.latency_s = latency_s
        self.batches: list[tuple[float, list[OutboundRecord]]] = []

    async def send_batch(self, records: Iterable[OutboundRecord]) -> None:
        self.batches.append((self.clock.now, list(records)))
        self.clock.now += self.latency_s

    @property
    def records(self) -> list[OutboundRecord]:
        return [r for _, batch in self.batches for r in batch]


@pytest.fixture(scope="module")
def market() -> tuple[list[Instrument], list[float]]:
    loaded = load_instrument_file(EXAMPLE)
    instruments = list(loaded.instruments)
    return instruments, [loaded.reference_prices[i.symbol] for i in instruments]


def test_first_tick_is_due_when_the_stream_starts() -> None:
    assert Pacer(rate=100, start=10.0).due(10.0, sent=0) == 1


def test_ticks_due_grow_with_elapsed_time_at_the_rate() -> None:
    pacer = Pacer(rate=100, start=10.0)
    assert pacer.due(10.5, sent=0) == 51
    assert pacer.due(10.5, sent=51) == 0
    assert pacer.due(11.0, sent=51) == 50


def test_a_late_sender_catches_up_in_batches_no_larger_than_the_cap() -> None:
    pacer = Pacer(rate=1_000, start=0.0, max_batch=300)
    assert pacer.due(5.0, sent=0) == 300


def test_wait_is_the_time_until_the_next_tick_is_due() -> None:
    pacer = Pacer(rate=4, start=10.0)
    assert pacer.wait_s(10.0, sent=1) == pytest.approx(0.25)
    assert pacer.wait_s(11.0, sent=1) == 0.0


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Pacer(rate=0, start=0.0)


async def test_opening_prices_then_ledger_then_ticks_are_published(
    market: tuple[list[Instrument], list[float]],
) -> None:
    instruments, start = market
    clock = FakeClock()
    sender = RecordingSender(clock)
    spec = MarketSpec(seed=1, accounts=200, step_s=len(instruments) / 50)
    target = SimulationTarget("p", "f", rate=50, ticks=100)
    totals = await publish_simulation(
        sender, instruments, start, spec, target, clock=clock, sleep=clock.sleep
    )
    topics = [r.topic for r in sender.records]
    m = len(instruments)
    ledger = plan_accounts(instruments, start, spec).ledger_count
    assert topics == ["p"] * m + ["f"] * ledger + ["p"] * (100 - m)
    assert (totals.ticks, totals.ledger) == (100, ledger)
    assert [r.key for r in sender.records[:m]] == [i.symbol.encode() for i in instruments]


async def test_duration_publishes_rate_times_duration_ticks_after_the_opening_prices(
    market: tuple[list[Instrument], list[float]],
) -> None:
    instruments, start = market
    clock = FakeClock()
    sender = RecordingSender(clock)
    target = SimulationTarget("p", "f", rate=200, duration_s=3.0)
    totals = await publish_simulation(
        sender, instruments, start, MarketSpec(accounts=10), target, clock=clock, sleep=clock.sleep
    )
    assert totals.ticks == tick_count(len(instruments), 200, 3.0) == len(instruments) + 600
    assert sum(r.topic == "p" for r in sender.records) == totals.ticks


async def test_no_tick_is_sent_before_it_is_due(
    market: tuple[list[Instrument], list[float]],
) -> None:
    instruments, start = market
    clock = FakeClock()
    sender = RecordingSender(clock, latency_s=0.003)
    rate = 500.0
    target = SimulationTarget("p", "f", rate=rate, duration_s=2.0)
    await publish_simulation(
        sender, instruments, start, MarketSpec(accounts=10), target, clock=clock, sleep=clock.sleep
    )
    stream = [(t, b) for t, b in sender.batches if b[0].topic == "p"][1:]  # after the opening
    stream_start = stream[0][0]
    sent = 0
    for sent_at, batch in stream:
        sent += len(batch)
        assert sent <= math.floor((sent_at - stream_start) * rate + 1e-9) + 1


async def test_a_slow_producer_still_sends_every_tick_in_bigger_batches(
    market: tuple[list[Instrument], list[float]],
) -> None:
    instruments, start = market
    clock = FakeClock()
    sender = RecordingSender(clock, latency_s=0.05)
    target = SimulationTarget("p", "f", rate=2_000, duration_s=1.0)
    totals = await publish_simulation(
        sender, instruments, start, MarketSpec(accounts=10), target, clock=clock, sleep=clock.sleep
    )
    assert totals.ticks == len(instruments) + 2_000
    stream_batches = [b for _, b in sender.batches if b[0].topic == "p"][1:]
    assert max(len(b) for b in stream_batches) >= 50


async def test_progress_is_reported_about_once_a_second(
    market: tuple[list[Instrument], list[float]],
) -> None:
    instruments, start = market
    clock = FakeClock()
    reports: list[Progress] = []
    target = SimulationTarget("p", "f", rate=100, duration_s=5.0)
    await publish_simulation(
        RecordingSender(clock),
        instruments,
        start,
        MarketSpec(accounts=10),
        target,
        on_progress=reports.append,
        clock=clock,
        sleep=clock.sleep,
    )
    assert 4 <= len(reports) <= 6
    assert all(
        later.elapsed_s - earlier.elapsed_s >= 1.0 for earlier, later in itertools.pairwise(reports)
    )
    assert reports[-1].tick_rate == pytest.approx(100, rel=0.1)


async def test_unshifted_runs_with_one_seed_publish_identical_bytes(
    market: tuple[list[Instrument], list[float]],
) -> None:
    instruments, start = market
    spec = MarketSpec(seed=4, accounts=100, crash=CrashSpec(at_s=0.5), step_s=0.1)
    runs = []
    for latency in (0.0, 0.02):  # different batching must not change the bytes
        clock = FakeClock()
        sender = RecordingSender(clock, latency_s=latency)
        target = SimulationTarget("p", "f", rate=len(instruments) / 0.1, ticks=300)
        await publish_simulation(
            sender,
            instruments,
            start,
            spec,
            target,
            clock=clock,
            sleep=clock.sleep,
            shift_ticks=False,
        )
        runs.append(sender.records)
    assert runs[0] == runs[1]
