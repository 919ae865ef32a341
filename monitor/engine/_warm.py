"""Compile the engine's kernels ahead of the first cycle that needs them.

numba compiles a kernel on its first call for the types of that call's arguments (each
array's dtype, dimensions, layout and whether it is read-only), or loads the machine code
from its disk cache (``__pycache__``, written at the first compile). The book's columns
keep 4-byte ids while numpy hands out 8-byte indices, and which of them reaches a kernel
depends on the path a cycle takes, so tiny arrays made up here would miss some. Instead
``warm_up`` runs the engine itself, on two small books from the simulation's generators,
through what the service does with it:

* a book of linear contracts (tiered and size-scaled, so price bands are on): the ledger
  (cross and isolated accounts), a tick of one instrument and a tick of every one, a
  sell-off into liquidations, the consistency sweep and check, an event's figures, and
  a snapshot written and loaded into a fresh book;
* a book with a coin-margined perpetual, an option chain and portfolio-margined accounts,
  through the same cycles.

The service runs it in a thread at start-up while the price table catches up, so it never
delays readiness. ``tests/unit/test_engine_warm_up.py`` runs larger books after it and
asserts that nothing compiles.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec
import numpy as np

from monitor.book import export_partition, load_snapshots
from monitor.book._name_kernels import warm_up as warm_up_names
from monitor.book._seen import SeenIds, digest_of
from monitor.coin_market import inverse_books, inverse_perpetual
from monitor.engine._config import EngineConfig
from monitor.engine._engine import Engine
from monitor.engine._width_units import compile_every_width
from monitor.market import MarketSpec, ledger_events, plan_accounts
from monitor.option_market import Smile, option_books, option_chain, option_ticks
from monitor.portfolio_market import portfolio_books
from monitor.schema import (
    CollateralAsset,
    Instrument,
    PriceTick,
    RateCurve,
    SizeScaledMargin,
    SnapshotChunk,
    Tier,
    TieredMargin,
)

__all__ = ["warm_up"]

_TS = 1_700_000_000_000
_SPOT = 100.0
_MOVES = (1.001, 0.999, 1.002, 0.8, 0.6)  # calm ticks, then a sell-off


def _linear(symbol: str, base: str) -> Instrument:
    tiers = TieredMargin(
        tiers=(
            Tier(floor=0.0, cap=10_000.0, mmr=0.01, imr=0.02),
            Tier(floor=10_000.0, cap=1e12, mmr=0.02, imr=0.04),
        )
    )
    return Instrument(symbol=symbol, kind="linear", quote="USDT", base=base, margin=tiers)


def _sized(symbol: str, base: str) -> Instrument:
    margin = SizeScaledMargin(
        im=RateCurve(base=0.02, slope=5e-5), mm=RateCurve(base=0.01, slope=5e-5)
    )
    return Instrument(symbol=symbol, kind="linear", quote="USDT", base=base, margin=margin)


def _ticks(prices: dict[str, float], ts: int) -> list[PriceTick]:
    return [PriceTick(symbol=s, mark_price=p, ts=ts) for s, p in prices.items()]


def _cycles(engine: Engine, prices: dict[str, float], smile: Smile | None = None) -> None:
    """Each instrument's tick alone (its holders: few units) and every instrument's (most
    units), through a sell-off; then the sweep, the check and the figures of an event."""
    underlying = next(iter(prices))
    for step, move in enumerate(_MOVES, start=1):
        ts = _TS + step * 1_000
        moved = {s: round(p * move, 6) for s, p in prices.items()}
        for symbol, price in moved.items():
            engine.apply([], _ticks({symbol: price}, ts), ts)
        every = _ticks(moved, ts)
        if smile is not None:
            every += option_ticks(smile, moved[underlying], ts)
        engine.apply([], every, ts)
    engine.verify_sweep()
    engine.verify()
    for ix in range(min(8, engine.book.accounts.size)):
        engine.account_risk(engine.book.account_names[ix])


def _remembered_ids() -> None:
    """The index of remembered ledger ids: a merge (after 4,096 ids), a batch lookup and
    a single one. The small books above never merge it."""
    seen = SeenIds()
    for k in range(5_000):
        seen.add(("fill", f"warm-{k}"), _TS)
    digests = [digest_of(("fill", f"warm-{k}")) for k in range(0, 6_000, 500)]
    seen.look_up(digests)
    _ = ("fill", "warm-1") in seen


def _snapshot(engine: Engine, prices: dict[str, float]) -> None:
    """A snapshot of every account, through the wire, loaded into a fresh book."""
    encode = msgspec.json.Encoder().encode
    chunks = export_partition(
        engine.book,
        np.arange(engine.book.accounts.size),
        topic="warm",
        partition=0,
        next_offset=0,
        ts=_TS,
        max_bytes=1 << 20,
        encode=encode,
    )
    fresh = Engine(engine.book.instruments, engine.config)
    fresh.apply([], _ticks(prices, _TS), _TS)
    load_snapshots(fresh.book, [msgspec.json.decode(encode(c), type=SnapshotChunk) for c in chunks])
    fresh.full_recompute()


def _linear_book() -> tuple[Engine, dict[str, float]]:
    instruments = [
        _linear("WARMUSDT", "WARM"),
        _linear("COOLUSDT", "COOL"),
        _sized("WARMUSDT-S", "WARM"),
    ]
    prices = {i.symbol: _SPOT for i in instruments}
    spec = MarketSpec(seed=1, accounts=48, start_ts=_TS, account_prefix="warm-")
    plan = plan_accounts(instruments, list(prices.values()), spec)
    engine = Engine(instruments)
    engine.apply(list(ledger_events(plan, instruments, spec)), _ticks(prices, _TS), _TS)
    return engine, prices


def _option_book() -> tuple[Engine, dict[str, float], Smile]:
    underlying = _linear("WARMUSDT", "WARM")
    perpetual = inverse_perpetual("WARM")
    chain = option_chain(underlying, _SPOT, _TS)
    smile = Smile(chain, _SPOT)
    collateral = CollateralAsset(asset="WARM", haircut=0.05, price_symbol=underlying.symbol)
    engine = Engine([underlying, perpetual, *chain], EngineConfig(collateral=(collateral,)))
    prices = {underlying.symbol: _SPOT, perpetual.symbol: _SPOT}
    engine.apply([], _ticks(prices, _TS) + option_ticks(smile, _SPOT, _TS), _TS)
    ledger = [
        *inverse_books(perpetual, _SPOT, _TS, 8, 1, prefix="warm-inv-"),
        *option_books(underlying, chain, smile, _SPOT, _TS, 8, 1, prefix="warm-opt-"),
        *portfolio_books(underlying, chain, smile, _SPOT, _TS, 4, 1, prefix="warm-"),
    ]
    engine.apply(ledger, [], _TS)
    return engine, prices, smile


def warm_up(progress: Callable[[str, float], None] | None = None) -> float:
    """Compile (or load from the disk cache) every kernel; return the seconds it took.

    ``progress(step, seconds)`` is called after each step (``ledger``, ``ticks``,
    ``snapshot``, ``options and portfolio``) with the seconds since the start.
    """
    started = time.perf_counter()

    def step(name: str) -> None:
        if progress is not None:
            progress(name, time.perf_counter() - started)

    warm_up_names()  # the account name index: a bulk add (snapshot restore), names by id
    engine, prices = _linear_book()
    _remembered_ids()
    step("ledger")
    _cycles(engine, prices)
    step("ticks")
    _snapshot(engine, prices)
    step("snapshot")
    options, option_prices, smile = _option_book()
    _cycles(options, option_prices, smile)
    _snapshot(options, option_prices)
    compile_every_width()  # the books' brackets pick one width class; a venue's, any
    step("options and portfolio")
    return time.perf_counter() - started
