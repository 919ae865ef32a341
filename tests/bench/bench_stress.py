"""Benchmark book-wide stress (run by ``make bench``; one JSON line per figure).

Book: 1,000,000 cross accounts with 3 positions each (3,000,000 positions) on 9 linear
futures over 3 underlyings; 10 scenarios (each underlying -30 %, -50 %, +50 % and a
joint -50 % crash: the defaults).

* ``stress_book_copy``: copying what the stress needs (``BookCopier.take`` into its kept
  buffers, done inside a cycle, so it is what a cycle pays), against the baseline of
  one cycle that ticks one instrument (``tick_cycle``); ``derive_seconds``: deriving
  the stress's view from the copy (``state_of``, in the worker thread).
* ``stress_full_book``: the whole report from that copy (value changes, the sparse
  product, bad debt, bankrupt accounts, contributors, per-underlying split, Cover-2,
  ADL queues). Baseline ``numpy_floor``: in the same run, the bare arithmetic no
  implementation can skip: a prebuilt CSR product of quantities and value changes and
  ``max(0, -(E + P&L))`` summed per scenario.
* ``stress_tick_latency``: median and p99 of one-tick ``Engine.apply`` (one
  instrument's ~333,000 holders; one tick every twice the time a tick takes, so the
  loop is idle half the time as a service waiting on Kafka is), alone and while the
  stress runs in a worker thread
  at the lowest CPU priority, as the service runs it (the report and the live ADL
  quantiles, back to back, stepping aside while a tick computes: ``CycleGate``);
  ``ratio`` and ``p99_ratio`` are with / without. ``--same-priority`` adds the worker at
  normal priority, ``--no-gate`` runs it without stepping aside.

Every line carries the host's 1-minute load average at its end (``load_1m``): on a
shared host the figures move with it. ``--accounts N`` runs a smaller book.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable

import numpy as np
import scipy.sparse

from monitor.book import load_cross_accounts
from monitor.engine import Engine, EngineConfig
from monitor.schema import Instrument, PortfolioMarginParams, PriceTick, Tier, TieredMargin
from monitor.solvency import (
    BookCopier,
    BookCopy,
    BookState,
    CycleGate,
    Stresser,
    scenario_values,
    state_of,
    warm_up,
)
from monitor.solvency_publisher import lower_priority

ACCOUNTS = 1_000_000
POSITIONS_PER_ACCOUNT = 3
BASES = {"BTC": 100_000.0, "ETH": 4_000.0, "SOL": 200.0}
PER_BASE = 3
NOW = 1_796_198_400_000


def instruments() -> list[Instrument]:
    tiers = (Tier(floor=0, cap=1e15, mmr=0.01, imr=0.02),)
    return [
        Instrument(
            symbol=f"{base}-{k}",
            kind="linear",
            quote="USDT",
            base=base,
            margin=TieredMargin(tiers=tiers),
        )
        for base in BASES
        for k in range(PER_BASE)
    ]


def build(rng: np.random.Generator) -> Engine:
    specs = instruments()
    engine = Engine(specs, EngineConfig())
    prices = [BASES[i.base] * (1.0 + 0.001 * k) for k, i in enumerate(specs)]
    engine.apply(
        [],
        [
            PriceTick(symbol=i.symbol, mark_price=p, ts=NOW)
            for i, p in zip(specs, prices, strict=True)
        ],
        NOW,
    )
    n = len(specs)
    account = np.repeat(np.arange(ACCOUNTS), POSITIONS_PER_ACCOUNT)
    start = rng.integers(0, n, size=ACCOUNTS)
    instrument = ((start[:, None] + np.arange(POSITIONS_PER_ACCOUNT) * 2) % n).reshape(-1)
    qty = rng.choice([-1.0, 1.0], size=instrument.size) * rng.lognormal(0.0, 1.0, instrument.size)
    mark = np.asarray(engine.book.mark)[instrument]
    qty /= mark / 1_000.0  # about 1,000 of notional a position, lognormal
    entry = mark * rng.uniform(0.9, 1.1, instrument.size)
    balances = np.zeros((ACCOUNTS, len(engine.book.assets)))
    balances[:, 0] = rng.lognormal(np.log(400.0), 1.0, ACCOUNTS)
    names = [f"acct-{k:07d}" for k in range(ACCOUNTS)]
    load_cross_accounts(engine.book, names, balances, account, instrument, qty, entry)
    engine.full_recompute()
    return engine


def best_of(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def emit(**figure: object) -> None:
    figure["load_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(figure), flush=True)


def tick_times(
    engine: Engine,
    count: int,
    start: int,
    gate: CycleGate | None = None,
    every_s: float = 0.0,
) -> list[float]:
    """Seconds of ``count`` one-tick cycles, one every ``every_s`` at most (the service
    waits on Kafka between cycles: that idle time is when a stress runs); with ``gate``,
    closed around each cycle's computing as the service closes it."""
    symbol = "BTC-0"
    price = float(engine.book.mark[engine.book.instrument_index[symbol]])
    times = []
    next_at = time.perf_counter()
    for k in range(count):
        pause = next_at - time.perf_counter()
        if pause > 0:
            time.sleep(pause)  # pacing the stream, not waiting for a result
        next_at = time.perf_counter() + every_s
        ts = NOW + start + k
        tick = PriceTick(symbol=symbol, mark_price=price * (1.0 + 1e-6 * (k % 2)), ts=ts)
        t0 = time.perf_counter()
        if gate is None:
            engine.apply([], [tick], ts)
        else:
            with gate.cycle():
                engine.apply([], [tick], ts)
        times.append(time.perf_counter() - t0)
    return times


def tick_latency(
    engine: Engine,
    stresser: Stresser,
    copied: BookCopy,
    state: BookState,
    count: int,
    *,
    nice: bool,
    start: int,
    gated: bool,
) -> None:
    """Ticks alone, then beside a worker running the stress as the service does."""
    gate = CycleGate() if gated else None
    worker_gate = gate if gate is not None else CycleGate()
    # Ticks at half the rate one core could take: the loop is idle half the time.
    every_s = 2.0 * statistics.median(tick_times(engine, 6, start - 100)[1:])
    alone = tick_times(engine, count, start, every_s=every_s)[5:]
    done = threading.Event()
    rounds = 0

    def stress_loop() -> None:
        nonlocal rounds
        if nice:
            lower_priority()  # as the service's worker thread
        while not done.is_set():
            stressed = state_of(copied, gate=worker_gate)
            stresser.report(stressed, 1e6, NOW, gate=worker_gate)
            stresser.quantiles(stressed, gate=worker_gate)
            rounds += 1

    worker = threading.Thread(target=stress_loop)
    worker.start()
    try:
        loaded = tick_times(engine, count, start + 10_000, gate, every_s)[5:]
    finally:
        done.set()
        worker.join()
    base, with_stress = statistics.median(alone), statistics.median(loaded)
    p99_alone, p99_loaded = float(np.quantile(alone, 0.99)), float(np.quantile(loaded, 0.99))
    emit(
        figure="stress_tick_latency",
        accounts=engine.account_count,
        holders_per_tick=int((state.row_instrument == engine.book.instrument_index["BTC-0"]).sum()),
        worker_nice=19 if nice else 0,
        gate=gated,
        stress_pauses=worker_gate.pauses,
        ticks=len(loaded),
        tick_every_s=round(every_s, 4),
        seconds=round(with_stress, 4),
        p99_seconds=round(p99_loaded, 4),
        baseline="tick_without_stress",
        baseline_seconds=round(base, 4),
        baseline_p99_seconds=round(p99_alone, 4),
        ratio=round(with_stress / base, 3),
        p99_ratio=round(p99_loaded / p99_alone, 3),
        stress_rounds_during=rounds,
    )


def main() -> int:
    global ACCOUNTS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=ACCOUNTS)
    parser.add_argument("--ticks", type=int, default=60, help="ticks timed alone and loaded")
    parser.add_argument(
        "--same-priority",
        action="store_true",
        help="also time ticks beside a worker at normal CPU priority (the GIL's share alone)",
    )
    parser.add_argument(
        "--no-gate",
        action="store_true",
        help="the worker does not step aside while a tick computes (the kernels alone)",
    )
    args = parser.parse_args()
    ACCOUNTS = args.accounts
    warm_up()
    rng = np.random.default_rng(15)
    t0 = time.perf_counter()
    engine = build(rng)
    print(
        f"# built {engine.account_count} accounts, {engine.position_count} positions in "
        f"{time.perf_counter() - t0:.1f}s",
        file=sys.stderr,
    )
    stresser = Stresser(sorted(BASES))
    scenarios = len(stresser.scenarios)
    copier = BookCopier()
    copier.take(engine)  # size the kept buffers, as the service's first stress does
    copy_s = best_of(3, lambda: copier.take(engine))
    tick_s = statistics.median(tick_times(engine, 6, 500)[1:])  # the first moves nothing
    copied = copier.take(engine)
    derive_s = best_of(3, lambda: state_of(copied))
    state = state_of(copied)
    emit(
        figure="stress_book_copy",
        accounts=engine.account_count,
        positions=engine.position_count,
        seconds=round(copy_s, 4),
        baseline="tick_cycle",
        baseline_seconds=round(tick_s, 4),
        ratio=round(copy_s / tick_s, 3),
        derive_seconds=round(derive_s, 4),
    )

    _, values = scenario_values(state, stresser.scenarios, PortfolioMarginParams())
    matrix = scipy.sparse.csr_array(
        (state.row_qty, (state.row_unit, state.row_instrument)),
        shape=(state.units, values.shape[0]),
    )

    def floor() -> object:
        pnl = matrix @ values
        return np.maximum(-(state.unit_equity[:, None] + pnl), 0.0).sum(axis=0)

    floor_s = best_of(3, floor)
    report = stresser.report(state, 1e6, NOW)
    full_s = best_of(3, lambda: stresser.report(state, 1e6, NOW))
    quantiles_s = best_of(3, lambda: stresser.quantiles(state))
    worst = max(report.scenarios, key=lambda r: r.bad_debt)
    emit(
        figure="stress_full_book",
        accounts=engine.account_count,
        positions=engine.position_count,
        scenarios=scenarios,
        seconds=round(full_s, 4),
        baseline="numpy_floor",
        baseline_seconds=round(floor_s, 4),
        ratio=round(full_s / floor_s, 2),
        adl_quantiles_seconds=round(quantiles_s, 4),
        worst_scenario=worst.scenario,
        worst_bad_debt=round(worst.bad_debt, 2),
        worst_bankrupt_accounts=worst.bankrupt_accounts,
        adl_queues=len(report.adl_candidates),
    )

    for k, nice in enumerate((True, False) if args.same_priority else (True,)):
        tick_latency(
            engine,
            stresser,
            copied,
            state,
            args.ticks + 5,
            nice=nice,
            start=1_000 + 100_000 * k,
            gated=not args.no_gate,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
