"""Sustained throughput of the running monitor against a bare consumer of the same ticks.

A round: render N ticks, pause the monitor (SIGSTOP), produce them with kcat (about a
second), resume it (SIGCONT) and time it until ``liqmon_records_consumed_total`` of the
prices topic has grown by N. That counter moves once a cycle's events are acknowledged
and its ledger offsets committed, so the figure is processed ticks, not fetched ones.
The scrapes that watch it are few (``Rig.until_consumed``): each costs the monitor's
loop what a bare consumer never pays.
The pause stays far below the consumer group's session timeout, so no rebalance
happens. The baseline then reads and decodes exactly the same offsets. The best of
the rounds counts for both (the least disturbed run of each).

There are two baselines. The figure's (``ratio``) is a bare consumer with aiokafka's
own records, what anyone would write. The monitor reads its records as ``LeanRecord`` s
(``streams._lean``), about 600 ns a record cheaper, so the second, a bare consumer with
the same records (``ratio_to_lean_baseline``), shows what the monitor's own work costs.
"""

from __future__ import annotations

import json
import pstats
import sys
import time
from pathlib import Path
from typing import Any, Final, NamedTuple

from _e2e_kafka import bare_consume, end_offsets, produce_file
from _e2e_market import SENTINEL_COUNT, TickTape
from _e2e_monitor import Activity
from _e2e_rig import CONSUMED, SCRAPE_MIN_S, Rig, progress

TARGET_RATIO: Final = 0.85


class Round(NamedTuple):
    """One measured round: the offsets it covered, how long, what the monitor did."""

    start: dict[int, int]
    end: dict[int, int]
    seconds: float
    activity: Activity
    scrapes: int

    @property
    def ticks(self) -> int:
        return sum(self.end[p] - self.start[p] for p in self.start)

    @property
    def rate(self) -> float:
        return self.ticks / self.seconds


async def _round(rig: Rig, tape: TickTape, ticks: int, profile: str | None) -> Round:
    monitor, topic = rig.monitor, rig.topics.prices
    chunks = tape.chunks_for(ticks)
    first = rig.take_chunks(chunks)
    ts = time.time_ns() // 1_000_000
    path = rig.tmp / "ticks.txt"
    with path.open("wb") as out:
        for k in range(first, first + chunks):
            out.write(tape.chunk(k, ts))
    start = await end_offsets(rig.kafka, topic)
    before = await monitor.scrape()
    consumed = before.value(CONSUMED, topic=topic)
    monitor.pause()
    paused = time.perf_counter()
    try:
        await produce_file(rig.kafka, topic, path)
        end = await end_offsets(rig.kafka, topic)
    finally:
        if profile is not None:
            monitor.profile_start()  # delivered with the SIGCONT
        monitor.resume()
    resumed = time.perf_counter()
    target = consumed + sum(end[p] - start[p] for p in start)
    done, scrapes = await rig.until_consumed(topic, target, timeout_s=300)
    if profile is not None:
        print_profile(await monitor.profile_stop(), profile)
    activity = Activity.between(before, await monitor.scrape(), topic)
    measured = Round(start, end, done - resumed, activity, scrapes)
    progress(
        f"monitor: {measured.ticks:,} ticks in {measured.seconds:.2f}s = {measured.rate:,.0f}/s "
        f"(paused {resumed - paused:.1f}s, {scrapes} scrapes; "
        f"{activity.figures(measured.seconds)})"
    )
    return measured


async def throughput(
    rig: Rig, tape: TickTape, *, accounts: int, ticks: int, rounds: int, profile: str | None
) -> dict[str, Any]:
    """Run the rounds and their baselines; the ``e2e_throughput`` figure."""
    measured: list[Round] = []
    baselines: list[float] = []
    lean_baselines: list[float] = []
    for _ in range(rounds):
        r = await _round(rig, tape, ticks, profile)
        measured.append(r)
        for lean, rates in ((False, baselines), (True, lean_baselines)):
            records, seconds = await bare_consume(
                rig.kafka, rig.topics.prices, r.start, r.end, lean_records=lean
            )
            if records != r.ticks:
                raise RuntimeError(f"the baseline read {records:,} records, expected {r.ticks:,}")
            rates.append(records / seconds)
            progress(
                f"baseline{', lean records' if lean else ''}: {records:,} ticks in "
                f"{seconds:.2f}s = {records / seconds:,.0f}/s"
            )
    best = max(measured, key=lambda r: r.rate)
    baseline = max(baselines)
    lean_baseline = max(lean_baselines)
    ratio = best.rate / baseline
    return {
        "bench": "e2e_throughput",
        "accounts": accounts,
        "sentinel_accounts": SENTINEL_COUNT,
        "ticks": best.ticks,
        "monitor_ticks_per_s": round(best.rate),
        "baseline": "bare aiokafka consumer with aiokafka's records, the monitor's client and "
        "collector settings and poll size, reading and decoding the same ticks (same offsets)",
        "baseline_ticks_per_s": round(baseline),
        "ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "met": ratio >= TARGET_RATIO,
        "lean_baseline": "the same bare consumer reading the monitor's lean records "
        "(streams._lean) instead of aiokafka's",
        "lean_baseline_ticks_per_s": round(lean_baseline),
        "ratio_to_lean_baseline": round(best.rate / lean_baseline, 3),
        "rounds": rounds,
        "monitor_ticks_per_s_rounds": [round(r.rate) for r in measured],
        "baseline_ticks_per_s_rounds": [round(b) for b in baselines],
        "lean_baseline_ticks_per_s_rounds": [round(b) for b in lean_baselines],
        **best.activity.figures(best.seconds),
        "metrics_scrapes": best.scrapes,
        "metrics_scrape_min_interval_s": SCRAPE_MIN_S,
        "profiled": profile is not None,
    }


def print_profile(path: Path, mode: str) -> None:
    """Where the monitor's time went, to stderr: the top functions, own and total."""
    if mode == "cprofile":
        stats = pstats.Stats(str(path), stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)
        return
    profile = json.loads(path.read_text())
    samples = profile["samples"] or 1
    progress(f"profile: {profile['samples']} samples over {profile['seconds']:.2f}s")
    for kind in ("own", "total"):
        progress(f"profile, {kind} time (share of samples):")
        for name, count in profile[kind]:
            progress(f"  {100 * count / samples:5.1f}%  {name}")
