"""Benchmark of VaR/ES over scenario sets (monitor.risk).

Figures:

* ``var.monte_carlo``: 10,000 accounts x 10,000 Monte Carlo paths (50 underlyings,
  Student-t from an EWMA covariance, 5 positions per account): paths, value changes,
  the sparse P&L product and VaR/ES per account.
* ``var.historical``: 100,000 accounts x 1,000 historical scenarios (200 underlyings,
  5 positions per account): scenario returns, value changes, P&L and VaR/ES.

Each prints one JSON line with a same-run numpy floor: ``np.partition`` of an accounts x
scenarios P&L matrix of the same shape (already computed, in the same chunks), the
selection any VaR/ES over those scenarios has to make.

* ``var.ewma_observe``: one cycle's batch of 200,000 marks over 2,000 underlyings spanning
  three one-minute bars, applied by ``EwmaVolatility.observe``; floor: ``np.lexsort`` of the
  same (underlying, ts) arrays, the ordering any event-time bar builder needs.

Run with ``make bench`` or ``.venv/bin/python tests/bench/bench_var.py``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np
import scipy.sparse

from monitor.risk import (
    EwmaParams,
    EwmaVolatility,
    ewma_covariance,
    historical_returns,
    linear_value_change,
    monte_carlo_returns,
    tail_size,
    var_es_of_positions,
)
from monitor.risk._measures import _CHUNK_CELLS

REPEATS = 3
POSITIONS_PER_ACCOUNT = 5
CONFIDENCE = 0.99


def best_of(run: Callable[[], object], repeats: int = REPEATS) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def report(figure: str, accounts: int, scenarios: int, seconds: float, floor: float) -> None:
    line = {
        "bench": f"var.{figure}",
        "accounts": accounts,
        "scenarios": scenarios,
        "seconds": round(seconds, 6),
        "baseline": "numpy partition of an accounts x scenarios P&L matrix (the tail selection)",
        "baseline_seconds": round(floor, 6),
        "ratio": round(seconds / floor, 2),
    }
    print(json.dumps(line), flush=True)


def positions(rng: np.random.Generator, accounts: int, instruments: int) -> scipy.sparse.csr_array:
    rows = np.repeat(np.arange(accounts), POSITIONS_PER_ACCOUNT)
    cols = rng.integers(0, instruments, rows.size)
    qty = rng.normal(0, 10, rows.size)
    return scipy.sparse.csr_array((qty, (rows, cols)), shape=(accounts, instruments))


def partition_floor(rng: np.random.Generator, accounts: int, scenarios: int) -> float:
    chunk = max(1, _CHUNK_CELLS // scenarios)
    pnl = rng.normal(0, 1, size=(chunk, scenarios))
    k = tail_size(scenarios, CONFIDENCE)

    def select() -> None:
        for start in range(0, accounts, chunk):
            rows = min(chunk, accounts - start)
            np.partition(pnl[:rows], k - 1, axis=1)

    return best_of(select)


def price_history(rng: np.random.Generator, days: int, underlyings: int) -> np.ndarray:
    returns = rng.standard_t(4, size=(days, underlyings)) * 0.02 / np.sqrt(2.0)
    return np.asarray(100.0 * np.exp(np.cumsum(returns, axis=0)))


def bench_monte_carlo(rng: np.random.Generator, accounts: int, paths: int) -> None:
    underlyings = 50
    prices = price_history(rng, 300, underlyings)
    cov = ewma_covariance(np.diff(np.log(prices), axis=0))[-1]
    book = positions(rng, accounts, underlyings)
    size = np.ones(underlyings)

    def run() -> None:
        returns = monte_carlo_returns(cov, paths, np.random.default_rng(1), dof=5.0)
        change = linear_value_change(returns, prices[-1], size)
        var_es_of_positions(book, change, CONFIDENCE)

    report("monte_carlo", accounts, paths, best_of(run), partition_floor(rng, accounts, paths))


def bench_historical(rng: np.random.Generator, accounts: int, scenarios: int) -> None:
    underlyings = 200
    prices = price_history(rng, scenarios + 10, underlyings)
    log_prices = np.log(prices)
    book = positions(rng, accounts, underlyings)
    size = np.ones(underlyings)

    def run() -> None:
        returns = historical_returns(log_prices, 1, scenarios)
        change = linear_value_change(returns, prices[-1], size)
        var_es_of_positions(book, change, CONFIDENCE)

    report(
        "historical",
        accounts,
        scenarios,
        best_of(run),
        partition_floor(rng, accounts, scenarios),
    )


def bench_ewma(rng: np.random.Generator, marks: int, underlyings: int) -> None:
    ix = rng.integers(0, underlyings, marks).astype(np.intp)
    ts = np.sort(rng.integers(60_000 * 100, 60_000 * 103, marks))
    price = 100 * np.exp(rng.normal(0, 0.001, marks))
    names = [f"U{k}" for k in range(underlyings)]
    warm = EwmaVolatility(names, EwmaParams(warmup=30))
    # Warm every underlying up first, so the timed batch runs the EWMA recursion.
    for bar in range(100):
        warm.observe(
            np.arange(underlyings, dtype=np.intp),
            np.full(underlyings, bar * 60_000, dtype=np.int64),
            100 * np.exp(rng.normal(0, 0.001, underlyings)),
        )
    states = warm.states()

    def run() -> None:
        EwmaVolatility.from_states(states, EwmaParams(warmup=30)).observe(ix, ts, price)

    rebuild = best_of(lambda: EwmaVolatility.from_states(states, EwmaParams(warmup=30)))
    seconds = best_of(run) - rebuild
    floor = best_of(lambda: np.lexsort((ts, ix)))
    line = {
        "bench": "var.ewma_observe",
        "marks": marks,
        "underlyings": underlyings,
        "seconds": round(seconds, 6),
        "baseline": "numpy lexsort of the batch by (underlying, ts)",
        "baseline_seconds": round(floor, 6),
        "ratio": round(seconds / floor, 2),
    }
    print(json.dumps(line), flush=True)


def main() -> None:
    rng = np.random.default_rng(20261202)
    bench_ewma(rng, 200_000, 2_000)
    bench_monte_carlo(rng, 10_000, 10_000)
    bench_historical(rng, 100_000, 1_000)


if __name__ == "__main__":
    main()
