"""Benchmark one underlying tick that revalues an option chain (``make bench``; JSON lines).

Book: 2,000 inverse option instruments on one underlying (10 expiries x 100 strikes x
call/put), 200,000 cross accounts holding 1,000,000 option positions (5 each, long and
short). Figures, each with a same-run baseline:

* ``option_underlying_tick``: one ``Engine.apply`` with one tick of the underlying
  (a 0.01 % move: every option reprices, nobody changes state), against
  ``numpy_floor``: the least numpy work that tick needs done in any design that prices
  per instrument: one Black-76 over the 2,000 instruments, a gather of mark and short
  margin per position and three per-account sums (bincount) over the million positions.
* ``black76_per_position``: Black-76 evaluated once per position (what pricing the
  position instead of the instrument would cost), against the same tick.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import numpy as np

from monitor.book import load_cross_accounts
from monitor.engine import Engine, EngineConfig
from monitor.models import black76, years_to_expiry
from monitor.schema import Instrument, OptionStandardMargin, PriceTick

ACCOUNTS = 200_000
PER_ACCOUNT = 5
EXPIRIES = 10
STRIKES = 100
DAY = 86_400_000
NOW = 1_700_000_000_000
SPOT = 40_000.0


def instruments() -> list[Instrument]:
    out = []
    for e in range(EXPIRIES):
        expiry = NOW + (7 + 14 * e) * DAY
        for k in range(STRIKES):
            strike = SPOT * (0.5 + k / STRIKES)
            for kind in ("call", "put"):
                out.append(
                    Instrument(
                        symbol=f"BTC-{e}-{k}-{kind[0].upper()}",
                        kind="option",
                        quote="USD",
                        base="BTC",
                        settle="BTC",
                        underlying="BTC-USD",
                        strike=strike,
                        expiry=expiry,
                        option_type=kind,
                        margin=OptionStandardMargin(),
                    )
                )
    return out


def build(rng: np.random.Generator) -> Engine:
    specs = instruments()
    engine = Engine(specs, EngineConfig(valuation_asset="BTC"))
    ticks = [PriceTick(symbol="BTC-USD", mark_price=SPOT, ts=NOW)]
    ticks += [
        PriceTick(symbol=i.symbol, mark_iv=float(rng.uniform(0.4, 0.9)), ts=NOW) for i in specs
    ]
    engine.apply([], ticks, NOW)
    n_instruments = len(specs)
    account = np.repeat(np.arange(ACCOUNTS), PER_ACCOUNT)
    start = rng.integers(0, n_instruments, ACCOUNTS)
    stride = rng.integers(1, n_instruments // PER_ACCOUNT, ACCOUNTS)
    instrument = (start[:, None] + stride[:, None] * np.arange(PER_ACCOUNT)) % n_instruments
    instrument = instrument.ravel().astype(np.intp)
    n = instrument.shape[0]
    qty = (rng.choice([-1.0, 1.0], n) * rng.integers(1, 20, n)).astype(np.float64)
    entry = np.maximum(engine.book.mark[instrument], 1e-4)
    balances = rng.lognormal(np.log(5.0), 1.0, (ACCOUNTS, 1))
    names = [f"acct{i}" for i in range(ACCOUNTS)]
    load_cross_accounts(engine.book, names, balances, account, instrument, qty, entry)
    engine.full_recompute()
    return engine


def numpy_floor(engine: Engine, spot: float) -> None:
    """Price 2,000 instruments, gather per position, sum per account: the floor."""
    book, contracts = engine.book, engine.book.contracts
    ix = contracts.options
    marks = contracts.price_options(
        ix, np.full(ix.shape, spot), book.options.vol[ix], np.full(ix.shape, float(NOW + 1))
    )
    pos = book.positions
    n = pos.size
    instrument, qty = pos.instrument[:n], pos.qty[:n]
    value = qty * marks.mark.take(instrument)
    short = np.maximum(-qty, 0.0)
    initial = short * marks.short_initial.take(instrument)
    maintenance = short * marks.short_maintenance.take(instrument)
    unit = pos.unit[:n]
    for column in (value, initial, maintenance):
        np.bincount(unit, column, minlength=book.units.size)


def per_position_black76(engine: Engine, spot: float) -> None:
    book, contracts = engine.book, engine.book.contracts
    instrument = book.positions.instrument[: book.positions.size]
    years = years_to_expiry(contracts.expiry_ms.take(instrument), NOW + 1)
    black76(
        spot,
        contracts.strike.take(instrument),
        years,
        book.options.vol.take(instrument),
        contracts.is_call.take(instrument),
    )


def emit(**figure: object) -> None:
    print(json.dumps(figure), flush=True)


def main() -> int:
    rng = np.random.default_rng(9)
    t0 = time.perf_counter()
    engine = build(rng)
    print(
        f"# built {engine.position_count:,} option positions in {time.perf_counter() - t0:.1f}s",
        file=sys.stderr,
    )
    ticks, events = [], 0
    for k in range(12):
        price = SPOT * (1.0 + 0.0001 * (1 if k % 2 else -1))
        t0 = time.perf_counter()
        events += len(
            engine.apply([], [PriceTick(symbol="BTC-USD", mark_price=price, ts=NOW + 1 + k)], 0)
        )
        ticks.append(time.perf_counter() - t0)
    tick = statistics.median(ticks)
    floors = []
    for _ in range(5):
        t0 = time.perf_counter()
        numpy_floor(engine, SPOT)
        floors.append(time.perf_counter() - t0)
    floor = min(floors)
    t0 = time.perf_counter()
    per_position_black76(engine, SPOT)
    per_position = time.perf_counter() - t0
    emit(
        figure="option_underlying_tick",
        option_instruments=len(engine.book.contracts.options),
        positions=engine.position_count,
        accounts=engine.account_count,
        seconds=round(tick, 4),
        ticks=len(ticks),
        events_emitted=events,
        baseline="numpy_floor",
        baseline_seconds=round(floor, 4),
        ratio=round(tick / floor, 2),
    )
    emit(
        figure="black76_per_position",
        seconds=round(per_position, 4),
        baseline="option_underlying_tick",
        baseline_seconds=round(tick, 4),
    )
    problems = engine.verify()
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
