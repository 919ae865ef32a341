"""The engine's warm-up compiles every kernel the service then calls, for the array types
it calls them with: the book keeps 4-byte ids in its columns and numpy hands out 8-byte
indices, and a kernel first called with another mix of the two would compile inside a
cycle (seconds on the event loop's thread)."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from monitor.book import ID, export_partition, load_snapshots
from monitor.coin_market import inverse_perpetual
from monitor.engine import Engine, EngineConfig, warm_up
from monitor.instruments import load_instrument_file
from monitor.market import CrashSpec, MarketSpec, PricePath, ledger_events, plan_accounts
from monitor.option_market import Smile, option_chain, option_ticks
from monitor.portfolio_market import portfolio_books
from monitor.schema import CollateralAsset, LedgerEvent, PriceTick, SnapshotChunk, Transfer
from monitor.simulate import SimulationTarget, publish_simulation
from tests.unit.test_simulate_options import EXAMPLE, START, _chain, _Sink

pytestmark = pytest.mark.unit

_encode = msgspec.json.Encoder().encode


def _dispatchers() -> dict[str, Any]:
    """Every compiled kernel of the service's per-cycle work, by module and name."""
    from numba.core.registry import CPUDispatcher

    wanted = ("monitor.engine", "monitor.book", "monitor.scenarios", "monitor.models")
    return {
        f"{name}.{attr}": value
        for name, module in list(sys.modules.items())
        if name.startswith(wanted)
        for attr, value in vars(module).items()
        if isinstance(value, CPUDispatcher)
    }


def _signatures() -> dict[str, int]:
    return {name: len(d.signatures) for name, d in _dispatchers().items()}


def _linear_cycles() -> Iterator[Engine]:
    """The simulated linear market: its ledger (cross and isolated accounts), one
    instrument's tick, every instrument's, a crash; a snapshot written and restored."""
    loaded = load_instrument_file(EXAMPLE)
    instruments = list(loaded.instruments)
    start = [loaded.reference_prices[i.symbol] for i in instruments]
    spec = MarketSpec(seed=5, accounts=3_000, start_ts=START, crash=CrashSpec(at_s=1.0))
    engine = Engine(instruments)
    path = PricePath.for_instruments(instruments, start, spec)
    ledger = list(ledger_events(plan_accounts(instruments, start, spec), instruments, spec))
    engine.apply(ledger, path.ticks(path.start[None, :], 0), START)
    assert engine.book.positions.account.dtype == ID
    marks = path.advance(40)
    for step in range(marks.shape[0]):
        ticks = path.ticks(marks[step : step + 1], step + 1)
        one = ticks[step % len(ticks)]
        engine.apply([], [one], one.ts)  # one instrument: its holders' blocks
        engine.apply([], ticks, ticks[-1].ts)  # every instrument
    yield engine
    chunks = export_partition(
        engine.book,
        np.arange(engine.book.accounts.size),
        topic="fills",
        partition=0,
        next_offset=1,
        ts=START,
        max_bytes=1 << 20,
        encode=_encode,
    )
    fresh = Engine(instruments)
    fresh.apply([], path.ticks(path.start[None, :], 0), START)
    decoded = [msgspec.json.decode(_encode(c), type=SnapshotChunk) for c in chunks]
    assert load_snapshots(fresh.book, decoded) == []
    fresh.full_recompute()
    names = fresh.book.account_names
    n = fresh.book.accounts.size
    # Ledger ids looked up in the restored index, with a merge of the index behind them.
    again = [
        Transfer(transfer_id=f"again-{k}", account=names[k % n], asset="USDT", amount=1.0, ts=START)
        for k in range(5_000)
    ]
    fresh.apply(again, [], START)
    fresh.apply(again[:10], [], START)  # duplicates: found in the index
    yield fresh


def _option_cycles() -> Iterator[Engine]:
    """The simulated option chain and coin-margined perpetual through a sell-off."""
    loaded, btc, chain = _chain()  # the example's BTC perpetual and its option chain
    perpetual = inverse_perpetual("BTC")
    instruments = [*loaded.instruments, perpetual, *chain]
    prices = {**loaded.reference_prices, perpetual.symbol: loaded.reference_prices[btc.symbol]}
    start = [prices.get(i.symbol, 0.0) for i in instruments]
    step_s = len(instruments) / 500
    spec = MarketSpec(
        seed=3, start_ts=START, step_s=step_s, crash=CrashSpec(at_s=2, drop=0.3), accounts=300
    )
    target = SimulationTarget(
        prices_topic="p", fills_topic="f", rate=500, ticks=len(instruments) * int(6 / step_s)
    )
    sink, clock = _Sink(), itertools.count(0, 0.001)

    async def no_sleep(_: float) -> None:
        return None

    asyncio.run(
        publish_simulation(
            sink, instruments, start, spec, target,
            clock=lambda: next(clock), sleep=no_sleep, shift_ticks=False,
        )
    )  # fmt: skip
    ticks = [msgspec.json.decode(r.value, type=PriceTick) for r in sink.records if r.topic == "p"]
    ledger = [
        msgspec.json.decode(r.value, type=LedgerEvent) for r in sink.records if r.topic == "f"
    ]
    collateral = CollateralAsset(asset="BTC", haircut=0.05, price_symbol=btc.symbol)
    engine = Engine(instruments, EngineConfig(collateral=(collateral,)))
    n = len(instruments)
    engine.apply([], ticks[:n], START)
    engine.apply(ledger, [], START)
    for k in range(n, len(ticks), n):
        engine.apply([], ticks[k : k + n], ticks[k].ts)
        engine.apply([], ticks[k : k + 1], ticks[k].ts)  # the underlying alone
    yield engine


def _portfolio_cycles() -> Iterator[Engine]:
    """Portfolio-margined books of the option chain through a sell-off."""
    loaded = load_instrument_file(EXAMPLE)
    underlying = loaded.instruments[0]
    spot = loaded.reference_prices[underlying.symbol]
    chain = option_chain(underlying, spot, START)
    smile = Smile(chain, spot)
    engine = Engine([underlying, *chain])
    opening = [PriceTick(symbol=underlying.symbol, mark_price=spot, ts=START)]
    engine.apply([], [*opening, *option_ticks(smile, spot, START)], START)
    engine.apply(
        list(portfolio_books(underlying, chain, smile, spot, START, 25, seed=3)), [], START
    )
    for step, drop in enumerate((0.05, 0.15, 0.3), start=1):
        price, ts = spot * (1.0 - drop), START + step * 1_000
        tick = PriceTick(symbol=underlying.symbol, mark_price=price, ts=ts)
        engine.apply([], [tick, *option_ticks(smile, price, ts)], ts)
        engine.apply([], [tick], ts)  # the underlying alone
    yield engine


def _checks(engine: Engine) -> None:
    """What the service runs besides cycles: the sweep, the check, an event's figures."""
    engine.verify_sweep()
    assert engine.verify() == []
    for ix in range(min(50, engine.book.accounts.size)):
        engine.account_risk(engine.book.account_names[ix])


def grown(warm: bool) -> dict[str, int]:
    """Signatures each kernel gained running the three books, after ``warm_up`` (or not)."""
    if warm:
        warm_up()
    known = _signatures()
    for engines in (_linear_cycles(), _option_cycles(), _portfolio_cycles()):
        for engine in engines:
            _checks(engine)
    return {
        name: count - known.get(name, 0)
        for name, count in _signatures().items()
        if count != known.get(name, 0)
    }


def _grown_in_a_fresh_process(warm: bool) -> dict[str, int]:
    """:func:`grown` where no other test has compiled anything yet."""
    root = Path(__file__).resolve().parents[2]
    argv = [sys.executable, "-m", "tests.unit.test_engine_warm_up", "warm" if warm else "cold"]
    done = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, int] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_after_warm_up_the_services_cycles_compile_nothing() -> None:
    assert _grown_in_a_fresh_process(warm=True) == {}


def test_without_warm_up_the_same_cycles_compile_kernels() -> None:
    """The check above can fail: the same books compile the engine's kernels on first use."""
    compiled = _grown_in_a_fresh_process(warm=False)
    assert "monitor.engine._judge.judge" in compiled
    # a fill's revaluation, by the kernel of the example brackets' width class
    assert any(name.startswith("monitor.engine._width_kernels.revalue_rows_") for name in compiled)


if __name__ == "__main__":
    print(json.dumps(grown(sys.argv[1] == "warm")))
