"""Benchmark of ``liqmon replay`` over a file (run by ``make bench``; one JSON line).

A simulated crash (the example instruments, 10,000 accounts, 30,000 ticks over 30 s of
event time) written as JSON lines of the wire format, replayed with replay's own
batching (100 ms cycles): decoding, the intake and price guard, the engine, dynamic
margin, in the order ``liqmon run`` runs them.

* ``replay.file``: the whole replay (``monitor.replay.replay``), records per second.
  Baseline, same run: the engine alone (``Engine.apply``) on the same cycles, given the
  ticks and ledger events the intake accepted (decoded and screened untimed); the ratio
  is replay's overhead (reading, decoding, screening, dynamic margin) over the margin
  work itself.

Run with ``make bench`` or ``.venv/bin/python tests/bench/bench_replay.py [--small]``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from monitor.config import Settings
from monitor.engine import Engine
from monitor.instruments import load_instrument_file
from monitor.intake import Intake
from monitor.market import CrashSpec, MarketSpec, PricePath, ledger_events, plan_accounts
from monitor.metrics import Metrics
from monitor.partitions import AccountPartitions
from monitor.replay import ReplayOptions, read_input_file, replay
from monitor.replay._plan import own_steps

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "instruments.example.json"
_encode = msgspec.json.Encoder().encode


def write_session(path: Path, accounts: int, seconds: int, rate: int) -> int:
    """A crash market as JSON lines; returns the number of records."""
    loaded = load_instrument_file(EXAMPLE)
    instruments = [i for i in loaded.instruments if i.kind == "linear"]
    start = [loaded.reference_prices[i.symbol] for i in instruments]
    spec = MarketSpec(
        seed=7,
        accounts=accounts,
        step_s=len(instruments) / rate,
        crash=CrashSpec(at_s=seconds / 3),
    )
    plan = plan_accounts(instruments, start, spec)
    lines = [_encode(event) for event in ledger_events(plan, instruments, spec)]
    path_ = PricePath.for_instruments(instruments, start, spec)
    steps = seconds * rate // len(instruments)
    lines += [_encode(tick) for tick in path_.ticks(path_.advance(steps), 1)]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return len(lines)


def engine_alone(path: Path, settings: Settings) -> float:
    """Seconds of ``Engine.apply`` on replay's cycles: each cycle's records decoded and
    screened by the intake first (untimed), so the engine gets exactly what replay's does."""
    topics = settings.topics
    instruments = load_instrument_file(EXAMPLE).instruments
    records = read_input_file(path, topics.prices, topics.fills)
    engine = Engine(instruments, settings.engine)
    intake = Intake(settings.service, topics.dlq, Metrics())
    partitions = AccountPartitions()
    timed = 0.0
    for step in own_steps(
        [[(r.ts, r) for r in records]],
        topics.fills,
        frozenset(),
        cycle_ms=100,
        max_records=settings.service.max_price_batch,
    ):
        ticks, _ = intake.price_records(list(step.prices), engine, step.now_ms)
        items, _, _ = intake.ledger_batch(step.ledger, engine, partitions)
        started = time.perf_counter()
        engine.apply(items, ticks, step.now_ms)
        timed += time.perf_counter() - started
    return timed


def main() -> None:
    small = "--small" in sys.argv
    accounts, seconds, rate = (2_000, 10, 500) if small else (10_000, 30, 1_000)
    settings = Settings()
    instruments = load_instrument_file(EXAMPLE).instruments
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "session.jsonl"
        records = write_session(path, accounts, seconds, rate)
        options = ReplayOptions(files=(path,), cycle_ms=100)
        asyncio.run(replay(settings, instruments, options))  # warm: kernels, caches
        started = time.perf_counter()
        result = asyncio.run(replay(settings, instruments, options))
        seconds_replay = time.perf_counter() - started
        baseline = engine_alone(path, settings)
    line = {
        "bench": "replay.file",
        "records": records,
        "cycles": result.cycles,
        "events": len(result.published),
        "seconds": round(seconds_replay, 6),
        "records_per_s": round(records / seconds_replay),
        "baseline": "Engine.apply alone on the same cycles' accepted input",
        "baseline_seconds": round(baseline, 6),
        "ratio": round(seconds_replay / baseline, 2),
    }
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
