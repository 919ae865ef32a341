"""Benchmark the engine's revaluation (run by ``make bench``; one JSON line per figure).

Book: 1,000,000 cross accounts, 3,000,000 positions (3 per account), 500 instruments
(450 tiered with 5 Binance-like brackets, 50 size-scaled), about 6,000 holders per
instrument. Each figure is printed with its baseline measured in the same run:

* ``full_revaluation`` vs ``numpy_streaming_read``: one read (a reduction) of every
  input array the revaluation must read; target at most 4x. The two alternate, seven
  times each, and the best of each counts.
* ``full_revaluation`` vs ``python_loop``: a straightforward pure-Python loop over
  positions doing the same arithmetic (tier lookup, IM/MM, uPnL, per-account sums,
  states), timed on a 50,000-position sample and scaled; target at least 50x faster.
* ``verify``: the consistency sweep at once (a from-scratch recompute compared with
  the incremental state, plus the indexes), against the full revaluation;
  ``verify_step``: the longest of its slices as the service runs it (one per loop turn).
* ``incremental_price_update``: one ``Engine.apply`` with one tick of an instrument
  with 6,000 holders that moves nobody across a threshold, against the full
  revaluation; ``..._with_events``: the same with 0.1 % steps, where leveraged
  holders change state every tick and events are built;
  ``..._holder_share``: how much of a quiet cycle is work per holder (1, 2 and 5
  instruments ticking together), and what share of holders change state per tick of the
  0.1 % steps: the ceiling of skipping holders that cannot.
* ``crash_cycle``: a cycle in which every instrument falls 2 %, tens of thousands of
  events built (positions with liquidation prices, reductions), against the full
  revaluation.
* ``cycle_every_instrument_ticks``: a cycle in which every instrument ticks a little,
  with price bands (only the units whose marks left their band are judged) against the
  same cycles without them; the units revalued per cycle, and the share of the cycle
  that was holders that could not change state.
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _engine_python_loop import python_inputs, python_loop

from monitor import runtime
from monitor.book import load_cross_accounts
from monitor.engine import Engine, _kernels
from monitor.schema import Instrument, PriceTick, RateCurve, SizeScaledMargin, Tier, TieredMargin

ACCOUNTS = 1_000_000
PER_ACCOUNT = 3
INSTRUMENTS = 500
SIZE_SCALED_EVERY = 10
PYTHON_SAMPLE = 50_000
HOLDERS = 6_000

BRACKETS = (  # (cap, mmr, imr), Binance BTCUSDT-like
    (50_000.0, 0.004, 0.008),
    (600_000.0, 0.005, 0.01),
    (3_000_000.0, 0.01, 0.02),
    (12_000_000.0, 0.025, 0.05),
    (1e15, 0.05, 0.1),
)


def instruments() -> list[Instrument]:
    out = []
    for k in range(INSTRUMENTS):
        if k % SIZE_SCALED_EVERY == 0:
            margin: Any = SizeScaledMargin(
                im=RateCurve(base=0.02, slope=0.00005), mm=RateCurve(base=0.01, slope=0.00005)
            )
        else:
            floor, tiers = 0.0, []
            for cap, mmr, imr in BRACKETS:
                tiers.append(Tier(floor=floor, cap=cap, mmr=mmr, imr=imr))
                floor = cap
            margin = TieredMargin(tiers=tuple(tiers))
        out.append(
            Instrument(
                symbol=f"I{k:03d}USDT", kind="linear", quote="USDT", base=f"I{k:03d}", margin=margin
            )
        )
    return out


def build(rng: np.random.Generator) -> tuple[Engine, np.ndarray]:
    engine = Engine(instruments())
    n = ACCOUNTS * PER_ACCOUNT
    account = np.repeat(np.arange(ACCOUNTS), PER_ACCOUNT)
    # Three distinct instruments per account: a start and a stride, both random.
    start = rng.integers(0, INSTRUMENTS, ACCOUNTS)
    stride = rng.integers(1, INSTRUMENTS // PER_ACCOUNT, ACCOUNTS)
    instrument = (start[:, None] + stride[:, None] * np.arange(PER_ACCOUNT)) % INSTRUMENTS
    instrument = instrument.ravel().astype(np.intp)
    base = rng.uniform(1.0, 50_000.0, INSTRUMENTS)
    entry = base[instrument] * rng.uniform(0.9, 1.1, n)
    notional = rng.lognormal(np.log(20_000.0), 1.0, n)
    qty = notional / entry * rng.choice([-1.0, 1.0], n)
    leverage = np.where(rng.random(n) < 0.5, np.nan, rng.choice([5.0, 10.0, 20.0], n))
    balances = rng.lognormal(np.log(5_000.0), 1.0, (ACCOUNTS, 1))
    names = [f"acct{i}" for i in range(ACCOUNTS)]
    ticks = [
        PriceTick(symbol=s, mark_price=float(p), ts=0)
        for s, p in zip(engine.book.symbols, base, strict=True)
    ]
    engine.apply([], ticks, 0)  # prices first: loading then values everyone at them
    load_cross_accounts(engine.book, names, balances, account, instrument, qty, entry, leverage)
    engine.full_recompute()
    return engine, base


def best_of(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def best_of_interleaved(
    runs: int, fn: Callable[[], object], baseline: Callable[[], object]
) -> tuple[float, float]:
    """The best time of ``fn`` and of ``baseline`` over ``runs`` turns, one of each per
    turn: a noisy moment of the box falls on both, not on whichever ran then."""
    best, best_baseline = float("inf"), float("inf")
    for _ in range(runs):
        best = min(best, best_of(1, fn))
        best_baseline = min(best_baseline, best_of(1, baseline))
    return best, best_baseline


def streaming_read(engine: Engine) -> None:
    """Read once every array a full revaluation reads (the memory-bandwidth floor)."""
    book = engine.book
    pos, units, n, m = book.positions, book.units, book.positions.size, book.units.size
    for array in (pos.instrument[:n], pos.qty[:n], pos.entry[:n], pos.leverage[:n], pos.unit[:n]):
        np.add.reduce(array)
    for column in (units.row[:m], units.account[:m], units.state[:m]):
        np.add.reduce(column)
    np.add.reduce(book.accounts.balance[: book.accounts.size], axis=None)


def cycles_with_price_bands(engine: Engine, base: np.ndarray, rng: np.random.Generator) -> None:
    """Cycles in which every instrument ticks (a random walk of 3e-5 per cycle, about
    what 25,000 ticks/s do to the example instruments in a 15 ms cycle), with price bands
    and then, as the baseline, without them on the same book (the bands switched off and
    the book recomputed). Prints the cycle times and the units each revalued."""
    symbols = engine.book.symbols
    price = np.asarray(engine.book.mark, dtype=np.float64).copy()
    ts = 100_000

    def cycles(count: int) -> tuple[list[float], list[int]]:
        nonlocal ts
        times, revalued = [], []
        for _ in range(count):
            ts += 1
            price[:] *= np.exp(rng.normal(0.0, 3e-5, price.size))
            ticks = [
                PriceTick(symbol=s, mark_price=float(p), ts=ts)
                for s, p in zip(symbols, price.tolist(), strict=True)
            ]
            t0 = time.perf_counter()
            engine.apply([], ticks, ts)
            times.append(time.perf_counter() - t0)
            revalued.append(engine.revalued_by_prices)
        return times, revalued

    assert engine.banded, "the engine bench's book is linear: price bands are on"
    cycles(20)
    banded, revalued = cycles(200)
    engine.banded = False  # every holder of every moved instrument, as before the bands
    engine.full_recompute()
    cycles(5)
    every, _ = cycles(100)
    engine.banded = True
    engine.full_recompute()
    median, baseline = statistics.median(banded), statistics.median(every)
    emit(
        figure="cycle_every_instrument_ticks",
        what="every instrument ticks each cycle (random walk, 3e-5 per cycle); with price "
        "bands only the units whose marks left their band are revalued and judged",
        accounts=ACCOUNTS,
        seconds=round(median, 5),
        p99_seconds=round(float(np.percentile(banded, 99)), 5),
        units_revalued_per_cycle=round(statistics.mean(revalued)),
        units_revalued_share=round(statistics.mean(revalued) / engine.book.units.size, 4),
        baseline="the same cycles without price bands (every holder revalued)",
        baseline_seconds=round(baseline, 5),
        ratio=round(median / baseline, 3),
        skipped_share_of_cycle_time=round(1.0 - median / baseline, 3),
    )


def emit(**figure: object) -> None:
    print(json.dumps(figure), flush=True)


def main() -> int:
    rng = np.random.default_rng(7)
    t0 = time.perf_counter()
    engine, base = build(rng)
    built = f"{engine.account_count} accounts, {engine.position_count} positions"
    print(f"# built {built} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)

    engine.full_recompute()  # compiles the fused kernel (or loads it from the disk cache)
    full, floor = best_of_interleaved(7, engine.full_recompute, lambda: streaming_read(engine))
    emit(
        figure="full_revaluation",
        accounts=ACCOUNTS,
        positions=engine.position_count,
        instruments=INSTRUMENTS,
        kernel="numba" if _kernels.ENABLED else "numpy",
        seconds=round(full, 4),
        baseline="numpy_streaming_read",
        baseline_seconds=round(floor, 4),
        ratio=round(full / floor, 2),
        target="ratio <= 4",
        met=full / floor <= 4.0,
    )
    _kernels.ENABLED, fused = False, _kernels.ENABLED
    numpy_path = best_of(3, engine.full_recompute)
    _kernels.ENABLED = fused
    emit(
        figure="full_revaluation_numpy_reference",
        what="the same revaluation through the numpy paths the kernels replace",
        seconds=round(numpy_path, 4),
        baseline="numpy_streaming_read",
        baseline_seconds=round(floor, 4),
        ratio=round(numpy_path / floor, 2),
        kernel_speedup=round(numpy_path / full, 2),
    )

    sample = sorted(rng.choice(engine.book.positions.size, PYTHON_SAMPLE, replace=False).tolist())
    inputs = python_inputs(engine)
    loop = best_of(3, lambda: python_loop(inputs, sample))
    loop_scaled = loop * engine.book.positions.size / PYTHON_SAMPLE
    emit(
        figure="full_revaluation",
        seconds=round(full, 4),
        baseline="python_loop",
        baseline_sample_positions=PYTHON_SAMPLE,
        baseline_seconds=round(loop_scaled, 3),
        speedup=round(loop_scaled / full, 1),
        target="speedup >= 50",
        met=loop_scaled / full >= 50.0,
    )

    holders = engine.book.positions.holder_count
    ix = int(np.argmin(np.abs(holders - HOLDERS)))
    symbol = engine.book.symbols[ix]

    def tick_times(prices: list[float], first_ts: int) -> tuple[list[float], int]:
        times, emitted = [], 0
        for ts, price in enumerate(prices, start=first_ts):
            t0 = time.perf_counter()
            events = engine.apply([], [PriceTick(symbol=symbol, mark_price=price, ts=ts)], ts)
            times.append(time.perf_counter() - t0)
            emitted += len(events)
        return times, emitted

    # Alternating between two prices 1e-6 apart: after the first ticks nobody crosses a
    # band, so this is revaluation plus the state machine, without building events.
    p = float(base[ix])
    tick_times([p, p * 1.000001] * 5, 1)
    quiet, quiet_events = tick_times([p, p * 1.000001] * 200, 100)
    # Steps of 0.1 % up and down: leveraged holders cross thresholds every tick.
    busy, events = tick_times([p * (1.0 + 0.001 * ((k % 7) - 3)) for k in range(100)], 1_000)
    tick = statistics.median(quiet)
    emit(
        figure="incremental_price_update",
        holders=int(holders[ix]),
        seconds=round(tick, 6),
        ticks=len(quiet),
        events_emitted=quiet_events,
        baseline="full_revaluation",
        baseline_seconds=round(full, 4),
        speedup=round(full / tick, 1),
    )
    # Only what moved: the same quiet tick with 1, 2 and 5 instruments ticking in one cycle
    # (the single tick's holders stay in cache from tick to tick; more do not). Per
    # holder and fixed cost by a line through the 1- and 5-instrument ticks. Of the
    # holders, those that changed state in the busy run are the ones that could.
    ticked = [(ix + k) % INSTRUMENTS for k in range(5)]
    by_count: dict[int, float] = {}
    for count in (1, 2, 5):
        times = []
        for k in range(200):
            ts = 10_000 * count + k
            step = 1.000001 if k % 2 else 1.0
            cycle = [
                PriceTick(symbol=engine.book.symbols[i], mark_price=float(base[i]) * step, ts=ts)
                for i in ticked[:count]
            ]
            t0 = time.perf_counter()
            engine.apply([], cycle, ts)
            times.append(time.perf_counter() - t0)
        by_count[count] = statistics.median(times[10:])
    held_1, held_5 = int(holders[ix]), int(holders[ticked].sum())
    per_holder = (by_count[5] - by_count[1]) / (held_5 - held_1)
    emit(
        figure="incremental_price_update_holder_share",
        what="quiet ticks of 1, 2 and 5 instruments in one cycle; cost per holder and "
        "fixed cost (a line through 1 and 5); share of holders that changed state per "
        "tick in the 0.1 % steps",
        holders=held_1,
        seconds=round(by_count[1], 6),
        seconds_2_instruments=round(by_count[2], 6),
        seconds_5_instruments=round(by_count[5], 6),
        holders_5_instruments=held_5,
        per_holder_seconds=round(per_holder, 9),
        fixed_seconds=round(by_count[5] - per_holder * held_5, 6),
        per_holder_share_5_instruments=round(per_holder * held_5 / by_count[5], 3),
        holders_changing_state_share=round(events / len(busy) / int(holders[ix]), 4),
    )
    emit(
        figure="incremental_price_update_with_events",
        holders=int(holders[ix]),
        seconds=round(statistics.median(busy), 6),
        ticks=len(busy),
        events_per_tick=round(events / len(busy), 1),
        baseline="incremental_price_update",
        baseline_seconds=round(tick, 6),
    )
    cycles_with_price_bands(engine, base, rng)
    t0 = time.perf_counter()
    problems = engine.verify()
    emit(
        figure="verify",
        seconds=round(time.perf_counter() - t0, 4),
        problems=len(problems),
        baseline="full_revaluation",
        baseline_seconds=round(full, 4),
    )
    sweep = engine.verify_sweep()
    steps = []
    done = False
    while not done:
        t0 = time.perf_counter()
        done = sweep.step()
        steps.append(time.perf_counter() - t0)
    emit(
        figure="verify_step",
        what="the longest step of the sweep in slices (what one loop turn of the service "
        "pays), with the default slice",
        seconds=round(max(steps), 4),
        median_seconds=round(statistics.median(steps), 4),
        steps=len(steps),
        problems=len(sweep.problems),
        baseline="incremental_price_update",
        baseline_seconds=round(tick, 6),
    )
    crash_cycle(engine, full)
    return 0 if not problems and not sweep.problems else 1


def crash_cycle(engine: Engine, full: float) -> None:
    """A cycle in which every instrument falls 2 % at once (last: it leaves a tenth of the
    book in liquidation). Tens of thousands of units change state; each event carries
    its positions' liquidation prices and, in liquidation, the reduction. Printed against
    the full revaluation (one pass over the whole book). Run as ``liqmon run`` runs it:
    the collector at the monitor's thresholds (``monitor.runtime``), what was there
    before frozen out of its sight (the service freezes its rebuilt book); at CPython's
    defaults its collections took a third of the cycle."""
    symbols = engine.book.symbols
    ts = 10_000_000
    marks = np.asarray(engine.book.mark, dtype=np.float64) * 0.98
    ticks = [
        PriceTick(symbol=s, mark_price=float(p), ts=ts)
        for s, p in zip(symbols, marks.tolist(), strict=True)
    ]
    gc.collect()
    gc.freeze()
    with runtime.tuned():
        t0 = time.perf_counter()
        events = engine.apply([], ticks, ts)
        seconds = time.perf_counter() - t0
    gc.unfreeze()
    severe = sum(1 for event in events if event.reductions)
    emit(
        figure="crash_cycle",
        what="one cycle in which every instrument falls 2 %: revaluing, judging and "
        "building every event (positions with liquidation prices, reductions)",
        accounts=ACCOUNTS,
        seconds=round(seconds, 3),
        events=len(events),
        events_with_reductions=severe,
        microseconds_per_event=round(seconds / max(1, len(events)) * 1e6, 1),
        collector="the monitor's thresholds, the book frozen (monitor.runtime)",
        baseline="full_revaluation",
        baseline_seconds=round(full, 4),
        ratio=round(seconds / full, 1),
    )


if __name__ == "__main__":
    raise SystemExit(main())
