"""Benchmark portfolio margin in the engine (run by ``make bench``; one JSON line per figure).

Book: 100,000 accounts on portfolio margin, 10 positions each (1,000,000 positions), on 2
underlyings, each with a linear future of its own symbol and 1,000 linear options (10
expiries x 50 strikes x call/put): 2,000 option instruments, 33 scenarios (27 + 6).

* ``portfolio_underlying_tick``: one ``Engine.apply`` with a tick of one underlying: its
  1,000 options repriced (marks, Greeks, standard margin), their ~500,000 position rows
  revalued, its group priced on 33 scenarios, the group's figures of its ~100,000
  holders in one fused pass over their kept holder index, unit sums and the state
  machine. Target: <= 50 ms. Baseline ``numpy_floor``: the scenario engine's bare
  arithmetic for that group in the same run (pricing 1,000 instruments x 33 scenarios, a
  prebuilt CSR product with the holders' ~500,000 positions, the worst loss), i.e. what
  a numpy implementation of the model cannot skip. ``load_average``: the machine's
  1-minute load when the figure was taken (the bench shares its cores).
* ``portfolio_full_revaluation``: ``Engine.full_recompute`` (every position, every unit,
  both groups priced and every account's portfolio figures from scratch), against the
  floor of both groups.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import scipy.sparse

from monitor.book import PORTFOLIO, load_cross_accounts
from monitor.engine import Engine, EngineConfig
from monitor.scenarios import price_group, scenario_pnl, worst_loss
from monitor.schema import Instrument, OptionStandardMargin, PriceTick, Tier, TieredMargin

ACCOUNTS = 100_000
POSITIONS_PER_ACCOUNT = 10
UNDERLYINGS = {"BTC-USD": 100_000.0, "ETH-USD": 4_000.0}
EXPIRY_DAYS = (1, 3, 7, 14, 21, 30, 60, 90, 180, 365)
STRIKES = 50
NOW = 1_796_198_400_000
DAY = 86_400_000


def instruments() -> list[Instrument]:
    out = []
    for underlying, price in UNDERLYINGS.items():
        out.append(
            Instrument(
                symbol=underlying,
                kind="linear",
                quote="USDC",
                base=underlying.split("-")[0],
                margin=TieredMargin(tiers=(Tier(floor=0, cap=1e15, mmr=0.01, imr=0.02),)),
            )
        )
        for days in EXPIRY_DAYS:
            for strike in np.linspace(0.6, 1.5, STRIKES) * price:
                for kind in ("call", "put"):
                    out.append(
                        Instrument(
                            symbol=f"{underlying}-{days}D-{strike:.0f}-{kind[0].upper()}",
                            kind="option",
                            quote="USDC",
                            base=underlying.split("-")[0],
                            underlying=underlying,
                            strike=float(round(strike)),
                            expiry=NOW + days * DAY,
                            option_type=kind,
                            margin=OptionStandardMargin(),
                        )
                    )
    return out


def build(rng: np.random.Generator) -> Engine:
    specs = instruments()
    engine = Engine(specs, EngineConfig(valuation_asset="USDC"))
    ticks = [PriceTick(symbol=u, mark_price=p, ts=NOW) for u, p in UNDERLYINGS.items()]
    ticks += [PriceTick(symbol=i.symbol, mark_iv=0.5, ts=NOW) for i in specs if i.kind == "option"]
    engine.apply([], ticks, NOW)
    n = len(specs)
    # 10 distinct instruments per account: random offsets from a random start, no repeats.
    start = rng.integers(0, n, size=ACCOUNTS)
    steps = np.sort(rng.choice(n - 1, size=(ACCOUNTS, POSITIONS_PER_ACCOUNT), replace=True), 1)
    steps += np.arange(POSITIONS_PER_ACCOUNT)  # strictly increasing offsets below n + 9
    instrument = ((start[:, None] + steps % (n - 1)) % n).reshape(-1)
    account = np.repeat(np.arange(ACCOUNTS), POSITIONS_PER_ACCOUNT)
    pairs = account * n + instrument
    keep = np.unique(pairs, return_index=True)[1]
    account, instrument = account[keep], instrument[keep]
    qty = rng.choice([-1.0, 1.0], size=instrument.size) * rng.uniform(0.1, 5.0, instrument.size)
    entry = np.asarray(engine.book.mark)[instrument]
    balances = np.zeros((ACCOUNTS, len(engine.book.assets)))
    balances[:, 0] = rng.lognormal(np.log(200_000), 0.5, ACCOUNTS)
    names = [f"pm-{k:06d}" for k in range(ACCOUNTS)]
    load_cross_accounts(engine.book, names, balances, account, instrument, qty, entry)
    engine.book.accounts.mode[:ACCOUNTS] = PORTFOLIO
    engine.full_recompute()
    return engine


def best_of(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def group_floor(engine: Engine, group: int) -> Callable[[], object]:
    """The bare scenario arithmetic of one group: price it, product, worst loss."""
    portfolio, book = engine.portfolio, engine.book
    terms = portfolio.layout.terms(book, group)
    params = portfolio.layout.params[group]
    pos = book.positions
    rows = np.flatnonzero(portfolio.layout.group_of[pos.instrument[: pos.size]] == group)
    matrix = scipy.sparse.csr_array(
        (pos.qty[rows], (pos.account[rows], portfolio.layout.col[pos.instrument[rows]])),
        shape=(book.accounts.size, portfolio.layout.members[group].size),
    )

    def run() -> object:
        priced = price_group(terms, params)
        return worst_loss(scenario_pnl(matrix, priced.values), priced.scenarios.weight)

    return run


def emit(**figure: object) -> None:
    print(json.dumps(figure), flush=True)


def main() -> int:
    rng = np.random.default_rng(11)
    t0 = time.perf_counter()
    engine = build(rng)
    print(
        f"# built {engine.account_count} accounts, {engine.position_count} positions in "
        f"{time.perf_counter() - t0:.1f}s",
        file=sys.stderr,
    )
    portfolio = engine.portfolio
    group = portfolio.layout.index["BTC-USD"]
    holders = int(
        np.unique(
            engine.book.positions.account[
                portfolio.layout.group_of[engine.book.positions.instrument] == group
            ]
        ).size
    )
    floor_one = best_of(5, group_floor(engine, group))
    floors = [group_floor(engine, g) for g in range(portfolio.layout.size)]
    floor_all = best_of(3, lambda: [f() for f in floors])

    price = UNDERLYINGS["BTC-USD"]
    times, events = [], 0
    for k in range(40):
        ts = NOW + 1_000 + k
        tick = PriceTick(symbol="BTC-USD", mark_price=price * (1.0 + 1e-6 * (k % 2)), ts=ts)
        t0 = time.perf_counter()
        events += len(engine.apply([], [tick], ts))
        times.append(time.perf_counter() - t0)
    tick_s = statistics.median(times[5:])
    emit(
        figure="portfolio_underlying_tick",
        accounts=ACCOUNTS,
        positions=engine.position_count,
        option_instruments=int(engine.book.contracts.options.size),
        group_instruments=int(portfolio.layout.members[group].size),
        group_holders=holders,
        scenarios=33,
        seconds=round(tick_s, 4),
        events_emitted=events,
        baseline="numpy_floor",
        baseline_seconds=round(floor_one, 4),
        ratio=round(tick_s / floor_one, 2),
        target="seconds <= 0.05",
        met=tick_s <= 0.05,
        seconds_best=round(min(times[5:]), 4),
        load_average=round(os.getloadavg()[0], 2),
    )
    full = best_of(3, engine.full_recompute)
    emit(
        figure="portfolio_full_revaluation",
        accounts=ACCOUNTS,
        positions=engine.position_count,
        groups=portfolio.layout.size,
        seconds=round(full, 4),
        baseline="numpy_floor",
        baseline_seconds=round(floor_all, 4),
        ratio=round(full / floor_all, 2),
        load_average=round(os.getloadavg()[0], 2),
    )
    problems = engine.verify()
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
