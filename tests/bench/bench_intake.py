"""Benchmark of the price intake under the garbage collector (run by ``make bench``).

* ``intake_gc``: a million price records as aiokafka hands them out (``ConsumerRecord``,
  which the collector tracks), decoded and screened by the service's intake in cycles
  of two chunks of 1,700 (about what a cycle takes at 100,000 ticks/s), with the
  collector thresholds the monitor runs with (``monitor.runtime.GC_THRESHOLDS``):
  microseconds per record, the collections and the time they took, the longest. What
  was there before is frozen out of the collector's sight, as the service's book is.
  Baseline, same run: the same work at CPython's default thresholds (700, 10, 10).

Run with ``make bench`` or ``.venv/bin/python tests/bench/bench_intake.py``.
"""

from __future__ import annotations

import gc
import json
import time
from typing import Any

import msgspec
from aiokafka.structs import ConsumerRecord

from monitor.config import Settings
from monitor.engine import Engine
from monitor.intake import Intake, PricePoll
from monitor.metrics import Metrics
from monitor.runtime import GC_THRESHOLDS
from monitor.schema import Instrument, PriceTick, Tier, TieredMargin

RECORDS = 1_020_000
CHUNK = 1_700
SYMBOLS = [f"S{i}USDT" for i in range(11)]
DEFAULT_THRESHOLDS = (700, 10, 10)


def record(
    offset: int, ts: int, keys: list[bytes], values: list[bytes]
) -> ConsumerRecord[bytes, bytes]:
    """The ``offset``-th price record as aiokafka's fetcher builds it."""
    key, value = keys[offset % len(keys)], values[offset % len(values)]
    return ConsumerRecord("prices", 0, offset, ts, 0, key, value, None, len(key), len(value), [])


def intake_run(thresholds: tuple[int, int, int]) -> dict[str, Any]:
    """Decode and screen ``RECORDS`` records at ``thresholds``; time and collections."""
    margin = TieredMargin(tiers=(Tier(floor=0, cap=1e12, mmr=0.01, imr=0.02),))
    engine = Engine(
        [
            Instrument(symbol=s, kind="linear", quote="USDT", base=s[:-4], margin=margin)
            for s in SYMBOLS
        ]
    )
    now = int(time.time() * 1000)
    engine.apply([], [PriceTick(symbol=s, mark_price=100.0, ts=now) for s in SYMBOLS], now)
    intake = Intake(Settings().service, "dlq", Metrics())
    encode = msgspec.json.Encoder().encode
    values = [
        encode(PriceTick(symbol=SYMBOLS[k % 11], mark_price=100.0 + k % 7 / 100, ts=now))
        for k in range(1_000)
    ]
    keys = [s.encode() for s in SYMBOLS]
    pauses: list[float] = []
    started: list[float] = []

    def watch(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        else:
            pauses.append(time.perf_counter() - started.pop())

    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()  # as the service freezes its rebuilt book (monitor.rebalancing)
    gc.set_threshold(*thresholds)
    gc.callbacks.append(watch)
    offset = 0
    t0 = time.perf_counter()
    try:
        while offset < RECORDS:
            poll = PricePoll()
            for _ in range(2):
                records = [record(offset + k, now, keys, values) for k in range(CHUNK)]
                offset += CHUNK
                intake.take_prices(poll, records, engine, now)
            intake.price_batch(poll, engine, now)
        seconds = time.perf_counter() - t0
    finally:
        gc.callbacks.remove(watch)
        gc.set_threshold(*previous)
        gc.unfreeze()
    return {
        "us_per_record": round(seconds / offset * 1e6, 3),
        "collections": len(pauses),
        "collector_ms": round(sum(pauses) * 1000, 1),
        "longest_collection_ms": round(max(pauses, default=0.0) * 1000, 2),
    }


def main() -> None:
    tuned = intake_run(GC_THRESHOLDS)
    default = intake_run(DEFAULT_THRESHOLDS)
    figure = {
        "bench": "intake_gc",
        "records": RECORDS,
        "records_per_cycle": 2 * CHUNK,
        "thresholds": list(GC_THRESHOLDS),
        **tuned,
        "baseline": "the same intake at CPython's default collector thresholds",
        "baseline_thresholds": list(DEFAULT_THRESHOLDS),
        **{f"baseline_{key}": value for key, value in default.items()},
        "ratio": round(tuned["us_per_record"] / default["us_per_record"], 3),
    }
    print(json.dumps(figure), flush=True)


if __name__ == "__main__":
    main()
