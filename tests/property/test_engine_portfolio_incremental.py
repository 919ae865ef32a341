"""Incremental == from scratch with portfolio accounts (hypothesis).

The histories of test_engine_options_incremental, plus a linear future on the options'
underlying (so futures and options share a group), ``margin_settings`` records that
switch accounts between cross and portfolio margin, and the three models (risk matrix,
Greeks, hybrid) on different groups. After every cycle ``Engine.verify``
finds no difference from a full recompute, portfolio figures recomputed from scratch
with no cached group prices; a replay emits identical events.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.engine import Engine
from monitor.schema import (
    Instrument,
    LedgerEvent,
    MarginEvent,
    MarginSettings,
    PortfolioMarginParams,
    PriceTick,
    Tier,
    TieredMargin,
    Transfer,
)
from tests.property import test_engine_options_incremental as base

FUTURE = Instrument(
    symbol="BTC-USD",
    kind="linear",
    quote="USDT",
    base="BTC",
    margin=TieredMargin(tiers=(Tier(floor=0, cap=1e12, mmr=0.01, imr=0.02),)),
)
INSTRUMENTS = (*base.INSTRUMENTS, FUTURE)
# The options' group on the hybrid model (its floor needs the rows' standard IM), the
# inverse perpetual's on the Greeks model, BTCUSDT's on the risk matrix.
CONFIG = msgspec.structs.replace(
    base.CONFIG,
    portfolio_margin={
        "BTC-USD": PortfolioMarginParams(model="pm_hybrid", hybrid_floor=0.5),
        "BTC-PERP": PortfolioMarginParams(model="pm_greeks"),
    },
)
base.FILL_PRICE["BTC-USD"] = 30_000.0
base.QTY["BTC-USD"] = 0.5

fills = st.fixed_dictionaries(
    {
        "kind": st.just("fill"),
        "account": base.accounts,
        "symbol": st.sampled_from([i.symbol for i in INSTRUMENTS]),
        "side": st.sampled_from(["buy", "sell"]),
        "size": st.sampled_from([0.5, 1.0, 3.0]),
        "move": base.moves,
    }
)
switches = st.fixed_dictionaries(
    {
        "kind": st.just("mode"),
        "account": base.accounts,
        "mode": st.sampled_from(["portfolio", "portfolio", "cross"]),
    }
)
ledger_ops = st.one_of(fills, switches, base.ledger_ops)
cycles = st.lists(
    st.tuples(st.lists(ledger_ops, max_size=5), st.lists(base.price_ops, max_size=5)),
    min_size=1,
    max_size=10,
)


def _materialise(raw: list[Any]) -> list[tuple[list[LedgerEvent], list[PriceTick]]]:
    out, n = [], 0
    for cycle, (ops, ticks) in enumerate(raw, start=1):
        ts = base.START + cycle * base.DAY
        ledger: list[LedgerEvent] = []
        for op in ops:
            n += 1
            if op["kind"] == "mode":
                ledger.append(
                    MarginSettings(
                        settings_id=f"m{n}", account=op["account"], mode=op["mode"], ts=ts
                    )
                )
            else:
                ledger.append(base._ledger(op, n, ts))
        out.append((ledger, [base._tick(op, ts + k) for k, op in enumerate(ticks)]))
    return out


def _run(
    batches: list[tuple[list[LedgerEvent], list[PriceTick]]], check: bool
) -> list[MarginEvent]:
    engine = Engine(INSTRUMENTS, CONFIG)
    deposits: list[LedgerEvent] = [
        Transfer(transfer_id=f"s-{a}", account=a, asset=asset, amount=amount, ts=base.START)
        for a in base.ACCOUNTS
        for asset, amount in (("USDT", 20_000.0), ("BTC", 1.0))
    ]
    deposits.append(
        MarginSettings(settings_id="m-a0", account="a0", mode="portfolio", ts=base.START)
    )
    opening = [
        PriceTick(symbol=s, mark_price=30_000.0, ts=base.START)
        for s in ("BTC-USD", "BTC", "BTCUSDT", "BTC-PERP")
    ]
    opening += [PriceTick(symbol=s, mark_iv=0.6, ts=base.START) for s in base.OPTIONS]
    engine.apply(deposits, opening, base.START)
    events: list[MarginEvent] = []
    for cycle, (ledger, prices) in enumerate(batches, start=1):
        events.extend(engine.apply(ledger, prices, now_ms=base.START + cycle * base.DAY))
        if check:
            assert engine.verify() == [], f"after cycle {cycle}"
    return events


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cycles)
def test_incremental_state_equals_a_full_recompute_with_portfolio_accounts(
    raw: list[Any],
) -> None:
    _run(_materialise(raw), check=True)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cycles)
def test_a_replay_with_portfolio_accounts_emits_identical_events(raw: list[Any]) -> None:
    batches = _materialise(raw)
    first = _run(batches, check=False)
    assert _run(batches, check=False) == first


pytestmark = pytest.mark.filterwarnings("error")
