"""Micro-benchmark of the margin models on 3,000,000 positions.

Prints one JSON line per figure with its same-run baseline: a plain numpy streaming
read (``sum``) of the same input arrays, the least any revaluation has to do. Run
with ``make bench`` or ``.venv/bin/python tests/bench/bench_models.py [positions]``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from monitor.models import ModelTable
from monitor.schema import Instrument, RateCurve, SizeScaledMargin, Tier, TieredMargin

# Binance-like BTCUSDT brackets (floor, cap, mmr, max leverage), scaled per instrument.
BRACKETS = (
    (0, 50_000, 0.004, 125),
    (50_000, 250_000, 0.005, 100),
    (250_000, 1_000_000, 0.01, 50),
    (1_000_000, 10_000_000, 0.025, 20),
    (10_000_000, 20_000_000, 0.05, 10),
    (20_000_000, 50_000_000, 0.10, 5),
    (50_000_000, 100_000_000, 0.125, 4),
    (100_000_000, 200_000_000, 0.15, 3),
    (200_000_000, 300_000_000, 0.25, 2),
    (300_000_000, 500_000_000, 0.50, 1),
)
TIERED_INSTRUMENTS = 200
SIZE_SCALED_INSTRUMENTS = 20
REPEATS = 7


def tiered(k: int) -> Instrument:
    scale = 1.0 / (1 + k % 5)
    tiers = tuple(
        Tier(floor=f * scale, cap=c * scale, mmr=m, max_leverage=lev) for f, c, m, lev in BRACKETS
    )
    return Instrument(
        symbol=f"T{k}", kind="linear", quote="USDT", base="X", margin=TieredMargin(tiers=tiers)
    )


def size_scaled(k: int) -> Instrument:
    margin = SizeScaledMargin(
        im=RateCurve(base=0.02, slope=5e-5), mm=RateCurve(base=0.01, slope=5e-5)
    )
    return Instrument(
        symbol=f"S{k}", kind="linear", quote="USDC", base="X", contract_size=0.001, margin=margin
    )


def _sums(*arrays: np.ndarray) -> list[object]:
    """The baseline's work: one numpy sum of each array."""
    return [array.sum() for array in arrays]


def best_of(run: Callable[[], object], repeats: int = REPEATS) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def report(figure: str, n: int, seconds: float, baseline: float, what: str) -> None:
    line = {
        "bench": f"models.{figure}",
        "positions": n,
        "seconds": round(seconds, 6),
        "baseline": what,
        "baseline_seconds": round(baseline, 6),
        "ratio": round(seconds / baseline, 2),
    }
    print(json.dumps(line), flush=True)


def main(n: int) -> None:
    rng = np.random.default_rng(20240601)
    tiered_only = ModelTable.from_instruments([tiered(k) for k in range(TIERED_INSTRUMENTS)])
    mixed = ModelTable.from_instruments(
        [tiered(k) for k in range(TIERED_INSTRUMENTS)]
        + [size_scaled(k) for k in range(SIZE_SCALED_INSTRUMENTS)]
    )
    # Notionals spread over the brackets (log-uniform 10 USDT .. 100 M USDT).
    mark = rng.uniform(20_000, 40_000, n)
    notional = np.exp(rng.uniform(np.log(10.0), np.log(1e8), n))
    qty = notional / mark * np.where(rng.random(n) < 0.5, -1.0, 1.0)
    leverage = np.where(rng.random(n) < 0.5, np.nan, rng.uniform(1, 125, n))
    equity = rng.uniform(0.02, 0.5, n) * notional
    other = rng.uniform(0.0, 0.01, n) * notional

    def inputs(instruments: int) -> np.ndarray:
        return rng.integers(0, instruments, n).astype(np.intp)

    tiered_ix = inputs(len(tiered_only))
    mixed_ix = inputs(len(mixed))
    for table, ix, figure in (
        (tiered_only, tiered_ix, "requirements_tiered"),
        (mixed, mixed_ix, "requirements_mixed"),
    ):
        baseline = best_of(partial(_sums, ix, qty, mark, leverage))
        seconds = best_of(partial(table.requirements, ix, qty, mark, leverage))
        report(figure, n, seconds, baseline, "numpy sum of instrument_ix, qty, mark, leverage")
    baseline = best_of(lambda: (mixed_ix.sum(), qty.sum(), mark.sum(), equity.sum(), other.sum()))
    seconds = best_of(
        lambda: mixed.liquidation_prices(mixed_ix, qty, mark, equity, other), repeats=3
    )
    report(
        "liquidation_prices_mixed",
        n,
        seconds,
        baseline,
        "numpy sum of instrument_ix, qty, mark, equity, other_maintenance",
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3_000_000)
