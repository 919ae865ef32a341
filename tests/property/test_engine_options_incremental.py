"""Incremental == from scratch with options and inverse contracts mixed in (hypothesis).

Random histories of fills on linear, inverse and option instruments, deposits, option
deliveries, underlying moves, option ticks carrying ``mark_iv`` or only ``mark_price``
(vol implied), collateral price moves, across one option's expiry. After every cycle:

* ``Engine.verify`` finds no difference from a full recompute of positions and units;
* every option instrument's mark, Greeks and short margin equal a from-scratch pricing
  of that instrument at its stored volatility, underlying price and valuation time;
* the same inputs replayed into a fresh engine give identical events.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.engine import Engine, EngineConfig
from monitor.models import OPTION
from monitor.schema import (
    CollateralAsset,
    Delivery,
    Fill,
    Instrument,
    LedgerEvent,
    MarginEvent,
    OptionStandardMargin,
    PriceTick,
    RateCurve,
    SizeScaledMargin,
    Tier,
    TieredMargin,
    Transfer,
)

DAY = 86_400_000
START = 1_700_000_000_000


def _option(symbol: str, strike: float, kind: str, days: int, settle: str) -> Instrument:
    return Instrument(
        symbol=symbol,
        kind="option",
        quote="USDT",
        base="BTC",
        settle=settle,
        underlying="BTC-USD",
        strike=strike,
        expiry=START + days * DAY,
        option_type="call" if kind == "C" else "put",
        margin=OptionStandardMargin(),
    )


INSTRUMENTS = (
    Instrument(
        symbol="BTCUSDT",
        kind="linear",
        quote="USDT",
        base="BTC",
        margin=TieredMargin(
            tiers=(
                Tier(floor=0, cap=50_000, mmr=0.004, imr=0.008),
                Tier(floor=50_000, cap=1e12, mmr=0.01, imr=0.02),
            )
        ),
    ),
    Instrument(
        symbol="BTC-PERP",
        kind="inverse",
        quote="USD",
        base="BTC",
        contract_size=10.0,
        margin=SizeScaledMargin(
            im=RateCurve(base=0.04, slope=0.00005), mm=RateCurve(base=0.02, slope=0.00005)
        ),
    ),
    _option("C-32K-5D", 32_000.0, "C", 5, "BTC"),
    _option("P-28K-5D", 28_000.0, "P", 5, "BTC"),
    _option("C-30K-30D", 30_000.0, "C", 30, "USDT"),
    _option("P-25K-30D", 25_000.0, "P", 30, "USDT"),
)
OPTIONS = [i.symbol for i in INSTRUMENTS if i.kind == "option"]
FILL_PRICE = {
    "BTCUSDT": 30_000.0,
    "BTC-PERP": 30_000.0,
    "C-32K-5D": 0.01,
    "P-28K-5D": 0.008,
    "C-30K-30D": 1_500.0,
    "P-25K-30D": 300.0,
}
QTY = {"BTCUSDT": 0.5, "BTC-PERP": 2_000.0, **dict.fromkeys(OPTIONS, 3.0)}
CONFIG = EngineConfig(
    collateral=(CollateralAsset(asset="BTC", haircut=0.05),), idempotency_window_s=1e9
)
ACCOUNTS = ("a0", "a1", "a2")

symbols = st.sampled_from([i.symbol for i in INSTRUMENTS])
accounts = st.sampled_from(ACCOUNTS)
moves = st.floats(min_value=0.8, max_value=1.2, allow_nan=False)

ledger_ops = st.one_of(
    st.fixed_dictionaries(
        {
            "kind": st.just("fill"),
            "account": accounts,
            "symbol": symbols,
            "side": st.sampled_from(["buy", "sell"]),
            "size": st.sampled_from([0.5, 1.0, 3.0]),
            "move": moves,
        }
    ),
    st.fixed_dictionaries(
        {
            "kind": st.just("transfer"),
            "account": accounts,
            "asset": st.sampled_from(["USDT", "BTC"]),
            "amount": st.sampled_from([5_000.0, -1_000.0, 0.3, -0.1]),
        }
    ),
    st.fixed_dictionaries(
        {
            "kind": st.just("delivery"),
            "account": accounts,
            "symbol": st.sampled_from(OPTIONS),
            "move": moves,
        }
    ),
)
price_ops = st.one_of(
    st.tuples(st.sampled_from(["BTC-USD", "BTC", "BTCUSDT", "BTC-PERP"]), moves),
    st.tuples(st.sampled_from(OPTIONS), st.sampled_from(["iv", "price"]), moves),
)
cycles = st.lists(
    st.tuples(st.lists(ledger_ops, max_size=5), st.lists(price_ops, max_size=5)),
    min_size=1,
    max_size=10,
)


def _ledger(op: dict[str, Any], n: int, ts: int) -> LedgerEvent:
    if op["kind"] == "fill":
        symbol = op["symbol"]
        return Fill(
            fill_id=f"f{n}",
            account=op["account"],
            symbol=symbol,
            side=op["side"],
            qty=QTY[symbol] * op["size"],
            price=round(FILL_PRICE[symbol] * op["move"], 6),
            ts=ts,
        )
    if op["kind"] == "transfer":
        return Transfer(
            transfer_id=f"t{n}",
            account=op["account"],
            asset=op["asset"],
            amount=op["amount"],
            ts=ts,
        )
    expiry = next(int(i.expiry or 0) for i in INSTRUMENTS if i.symbol == op["symbol"])
    return Delivery(
        delivery_id=f"d{n}",
        account=op["account"],
        symbol=op["symbol"],
        settlement_price=round(30_000.0 * op["move"], 2),
        ts=max(ts, expiry),  # a delivery comes at or after expiry
    )


def _tick(op: tuple[Any, ...], ts: int) -> PriceTick:
    if len(op) == 2:
        return PriceTick(symbol=op[0], mark_price=round(30_000.0 * op[1], 2), ts=ts)
    symbol, what, move = op
    if what == "iv":
        return PriceTick(symbol=symbol, mark_iv=0.6 * move, ts=ts)
    return PriceTick(symbol=symbol, mark_price=FILL_PRICE[symbol] * move, ts=ts)


def _materialise(raw: list[Any]) -> list[tuple[list[LedgerEvent], list[PriceTick]]]:
    out, n = [], 0
    for cycle, (ops, ticks) in enumerate(raw, start=1):
        ts = START + cycle * DAY  # a day per cycle: the 5-day options expire on the way
        ledger = []
        for op in ops:
            n += 1
            ledger.append(_ledger(op, n, ts))
        out.append((ledger, [_tick(op, ts + k) for k, op in enumerate(ticks)]))
    return out


def _option_marks_match_a_fresh_pricing(engine: Engine) -> None:
    book = engine.book
    state, contracts = book.options, book.contracts
    ix = contracts.options
    underlying = state.underlying_price[contracts.underlying[ix]]
    priced = np.isfinite(underlying) & np.isfinite(state.vol[ix])
    ix = ix[priced]
    fresh = contracts.price_options(
        ix, underlying[priced], state.vol[ix], state.value_ts[ix].astype(np.float64)
    )
    np.testing.assert_array_equal(book.mark[ix], fresh.mark)
    np.testing.assert_array_equal(state.greeks[ix], fresh.greeks)
    np.testing.assert_array_equal(state.short_initial[ix], fresh.short_initial)
    np.testing.assert_array_equal(state.short_maintenance[ix], fresh.short_maintenance)
    assert (contracts.kind[ix] == OPTION).all()


def _run(
    batches: list[tuple[list[LedgerEvent], list[PriceTick]]], check: bool
) -> list[MarginEvent]:
    engine = Engine(INSTRUMENTS, CONFIG)
    deposits = [
        Transfer(transfer_id=f"s-{a}", account=a, asset=asset, amount=amount, ts=START)
        for a in ACCOUNTS
        for asset, amount in (("USDT", 20_000.0), ("BTC", 1.0))
    ]
    opening = [
        PriceTick(symbol=s, mark_price=30_000.0, ts=START)
        for s in ("BTC-USD", "BTC", "BTCUSDT", "BTC-PERP")
    ]
    opening += [PriceTick(symbol=s, mark_iv=0.6, ts=START) for s in OPTIONS]
    engine.apply(deposits, opening, START)
    events: list[MarginEvent] = []
    for cycle, (ledger, prices) in enumerate(batches, start=1):
        events.extend(engine.apply(ledger, prices, now_ms=START + cycle * DAY))
        if check:
            assert engine.verify() == [], f"after cycle {cycle}"
            _option_marks_match_a_fresh_pricing(engine)
    return events


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cycles)
def test_incremental_state_equals_a_full_recompute_with_options_and_inverse(
    raw: list[Any],
) -> None:
    _run(_materialise(raw), check=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cycles)
def test_a_replay_with_options_and_inverse_emits_identical_events(raw: list[Any]) -> None:
    batches = _materialise(raw)
    first = _run(batches, check=False)
    assert _run(batches, check=False) == first


pytestmark = pytest.mark.filterwarnings("error")
