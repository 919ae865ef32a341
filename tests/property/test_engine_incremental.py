"""Properties of the engine over random histories (hypothesis).

* The incremental state equals a from-scratch recompute after every cycle
  (``Engine.verify``: figures within 1e-9 of each unit's scale, no pending
  transition, consistent holder and unit indexes).
* A fresh engine fed the same cycles emits identical events with identical ids.
* With price bands (the default) the engine emits the events it emits without, in the same
  order, with the same states and triggers and the same figures within rounding, though
  it revalues only the units whose marks left their bands; its state then passes the
  check (figures brought up to date first).
* A price that wanders inside the hysteresis band, crossing the liquidation price at
  least once, emits exactly one transition; leaving the band emits exactly one more.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.engine import Engine, EngineConfig
from monitor.schema import (
    CollateralAsset,
    Fill,
    Funding,
    Instrument,
    IsolatedMargin,
    LedgerEvent,
    MarginEvent,
    MarginSettings,
    PriceTick,
    RateCurve,
    SizeScaledMargin,
    Tier,
    TieredMargin,
    Transfer,
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
                Tier(floor=50_000, cap=250_000, mmr=0.005, imr=0.01),
                Tier(floor=250_000, cap=1e12, mmr=0.01, imr=0.02),
            )
        ),
    ),
    Instrument(
        symbol="ETHUSDT",
        kind="linear",
        quote="USDT",
        base="ETH",
        margin=SizeScaledMargin(
            im=RateCurve(base=0.02, slope=0.00005), mm=RateCurve(base=0.01, slope=0.00005)
        ),
    ),
    Instrument(
        symbol="SOLUSDT",
        kind="linear",
        quote="USDT",
        base="SOL",
        contract_size=10.0,
        margin=TieredMargin(
            tiers=(
                Tier(floor=0, cap=10_000, mmr=0.01, max_leverage=50),
                Tier(floor=10_000, cap=1e12, mmr=0.025, max_leverage=20),
            )
        ),
    ),
)
BASE_PRICE = {"BTCUSDT": 30_000.0, "ETHUSDT": 2_000.0, "SOLUSDT": 100.0, "BTC": 30_000.0}
CONFIG = EngineConfig(collateral=(CollateralAsset(asset="BTC", haircut=0.1),))
ACCOUNTS = ("a0", "a1", "a2", "a3")
STARTING_USDT = (1_000.0, 5_000.0, 50_000.0, 0.0)

symbols = st.sampled_from([i.symbol for i in INSTRUMENTS])
accounts = st.sampled_from(ACCOUNTS)
moves = st.floats(min_value=0.85, max_value=1.15, allow_nan=False)


def _fill(
    account: str, symbol: str, side: str, qty: float, move: float, fee: float
) -> dict[str, Any]:
    return {
        "kind": "fill",
        "account": account,
        "symbol": symbol,
        "side": side,
        "qty": round(qty * 10_000.0 / BASE_PRICE[symbol], 3),  # notional 1k .. 70k USDT
        "price": round(BASE_PRICE[symbol] * move, 2),
        "fee": fee,
    }


ledger_ops = st.one_of(
    st.builds(
        _fill,
        accounts,
        symbols,
        st.sampled_from(["buy", "sell"]),
        st.sampled_from([0.1, 0.3, 1.0, 2.5, 7.0]),
        moves,
        st.sampled_from([0.0, 0.5, -0.1]),
    ),
    st.fixed_dictionaries(
        {
            "kind": st.just("transfer"),
            "account": accounts,
            "asset": st.sampled_from(["USDT", "USDT", "BTC"]),
            "amount": st.sampled_from([5_000.0, 20_000.0, -3_000.0, 0.5, -0.2, 100.0]),
        }
    ),
    st.fixed_dictionaries(
        {
            "kind": st.just("funding"),
            "account": accounts,
            "symbol": symbols,
            "amount": st.sampled_from([-10.0, 3.0]),
        }
    ),
    st.fixed_dictionaries(
        {
            "kind": st.just("settings"),
            "account": accounts,
            "mode": st.sampled_from([None, "cross", "isolated"]),
            "symbol": symbols,
            "leverage": st.sampled_from([None, 5.0, 20.0, 125.0]),
        }
    ),
    st.fixed_dictionaries(
        {
            "kind": st.just("isolated"),
            "account": accounts,
            "symbol": symbols,
            "amount": st.sampled_from([500.0, -200.0]),
        }
    ),
    st.fixed_dictionaries({"kind": st.just("duplicate"), "back": st.integers(1, 5)}),
)
# Large moves cross many thresholds; small ones mostly stay inside the price bands.
price_ops = st.tuples(
    st.sampled_from([*BASE_PRICE]),
    st.one_of(moves, st.floats(min_value=0.997, max_value=1.003, allow_nan=False)),
)
cycles = st.lists(
    st.tuples(st.lists(ledger_ops, max_size=6), st.lists(price_ops, max_size=4)),
    min_size=1,
    max_size=12,
)


def _ledger_event(op: dict[str, Any], n: int, ts: int, history: list[LedgerEvent]) -> LedgerEvent:
    kind = op["kind"]
    if kind == "duplicate":
        return (
            history[-min(op["back"], len(history))]
            if history
            else _ledger_event(
                {"kind": "transfer", "account": "a0", "asset": "USDT", "amount": 1.0},
                n,
                ts,
                history,
            )
        )
    if kind == "fill":
        return Fill(
            fill_id=f"f{n}",
            account=op["account"],
            symbol=op["symbol"],
            side=op["side"],
            qty=op["qty"],
            price=op["price"],
            fee=op["fee"],
            ts=ts,
        )
    if kind == "transfer":
        return Transfer(
            transfer_id=f"t{n}",
            account=op["account"],
            asset=op["asset"],
            amount=op["amount"],
            ts=ts,
        )
    if kind == "funding":
        return Funding(
            funding_id=f"u{n}",
            account=op["account"],
            symbol=op["symbol"],
            amount=op["amount"],
            ts=ts,
        )
    if kind == "settings":
        return MarginSettings(
            settings_id=f"s{n}",
            account=op["account"],
            ts=ts,
            mode=op["mode"],
            symbol=op["symbol"],
            leverage=op["leverage"],
        )
    return IsolatedMargin(
        adjustment_id=f"m{n}",
        account=op["account"],
        symbol=op["symbol"],
        amount=op["amount"],
        ts=ts,
    )


def _materialise(
    raw: list[tuple[list[dict[str, Any]], list[tuple[str, float]]]],
) -> list[tuple[list[LedgerEvent], list[PriceTick]]]:
    history: list[LedgerEvent] = []
    out = []
    n = 0
    for ts, (ops, ticks) in enumerate(raw, start=1):
        ledger = []
        for op in ops:
            n += 1
            event = _ledger_event(op, n, ts, history)
            history.append(event)
            ledger.append(event)
        prices = [
            PriceTick(symbol=s, mark_price=round(BASE_PRICE[s] * m, 2), ts=ts * 10 + k)
            for k, (s, m) in enumerate(ticks)
        ]
        out.append((ledger, prices))
    return out


def _run(
    batches: list[tuple[list[LedgerEvent], list[PriceTick]]],
    check: bool,
    config: EngineConfig = CONFIG,
) -> list[MarginEvent]:
    engine = Engine(INSTRUMENTS, config)
    deposits = [
        Transfer(transfer_id=f"d{k}", account=account, asset="USDT", amount=amount, ts=0)
        for k, (account, amount) in enumerate(zip(ACCOUNTS, STARTING_USDT, strict=True))
    ]
    prices = [PriceTick(symbol=s, mark_price=p, ts=0) for s, p in BASE_PRICE.items()]
    engine.apply(deposits, prices, 0)
    events: list[MarginEvent] = []
    for cycle, (ledger, prices) in enumerate(batches, start=1):
        events.extend(engine.apply(ledger, prices, now_ms=1_000 * cycle))
        if check:
            assert engine.verify() == [], f"after cycle {cycle}"
    if not check:
        assert engine.verify() == [], "after the last cycle"
    return events


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cycles)
def test_incremental_state_equals_a_full_recompute_after_every_cycle(
    raw: list[tuple[list[dict[str, Any]], list[tuple[str, float]]]],
) -> None:
    _run(_materialise(raw), check=True)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cycles)
def test_a_replay_of_the_same_inputs_emits_identical_events(
    raw: list[tuple[list[dict[str, Any]], list[tuple[str, float]]]],
) -> None:
    batches = _materialise(raw)
    first = _run(batches, check=False)
    assert _run(batches, check=False) == first
    assert len({e.event_id for e in first}) == len(first)


def _without_figures(event: MarginEvent) -> tuple[Any, ...]:
    return (
        event.event_id,
        event.account,
        event.symbol,
        event.type,
        event.previous_state,
        event.state,
        event.trigger,
        event.trigger_ts,
    )


def _figures(event: MarginEvent) -> list[float]:
    return [event.equity, event.initial_margin, event.maintenance_margin]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cycles)
def test_price_bands_change_no_event(
    raw: list[tuple[list[dict[str, Any]], list[tuple[str, float]]]],
) -> None:
    batches = _materialise(raw)
    banded = _run(batches, check=False)
    every = _run(batches, check=False, config=msgspec.structs.replace(CONFIG, price_bands=False))
    assert [_without_figures(e) for e in banded] == [_without_figures(e) for e in every]
    for with_bands, without in zip(banded, every, strict=True):
        scale = sum(abs(x) for x in _figures(without)) + 1.0
        assert _figures(with_bands) == pytest.approx(_figures(without), rel=0, abs=1e-9 * scale)


LEVERAGED = Instrument(
    symbol="BTCUSDT",
    kind="linear",
    quote="USDT",
    base="BTC",
    margin=TieredMargin(tiers=(Tier(floor=0, cap=1e12, mmr=0.005, imr=0.01),)),
)


@settings(max_examples=150, deadline=None)
@given(
    qty=st.floats(min_value=0.1, max_value=50.0),
    side=st.sampled_from([1.0, -1.0]),
    band=st.sampled_from([0.02, 0.05, 0.2]),
    wiggles=st.lists(st.floats(min_value=-1.0, max_value=1.0), min_size=1, max_size=30),
    crossing=st.integers(min_value=0, max_value=30),
)
def test_a_price_inside_the_band_emits_one_transition_and_leaving_it_one_more(
    qty: float, side: float, band: float, wiggles: list[float], crossing: int
) -> None:
    entry, collateral = 30_000.0, 1_000.0 * qty
    engine = Engine([LEVERAGED], EngineConfig(hysteresis=band))
    engine.apply(
        [
            Transfer(transfer_id="t", account="a", asset="USDT", amount=collateral, ts=0),
            Fill(
                fill_id="f",
                account="a",
                symbol="BTCUSDT",
                side="buy" if side > 0 else "sell",
                qty=qty,
                price=entry,
                ts=0,
            ),
        ],
        [],
        0,
    )
    (position,) = engine.account_risk("a").positions
    liquidation = position.liquidation_price
    assert liquidation is not None
    # Within +-a of the liquidation price equity stays within half the band of MM
    # (MM is at least 0.005 * liquidation * qty): above the bankruptcy band, below the exit.
    # ``w`` > 0 is the safe side of the liquidation price (above it for a long, below
    # for a short); the path starts there and is made to cross once at ``crossing``.
    amplitude = 0.5 * band * 0.005 * liquidation * 0.9
    (start,) = engine.apply(
        [], [PriceTick(symbol="BTCUSDT", mark_price=liquidation + side * amplitude, ts=1)], 1
    )
    assert start.state == "margin_call"
    path = list(wiggles)
    path.insert(min(crossing, len(path)), -1.0)
    transitions = []
    for ts, w in enumerate(path, start=2):
        price = liquidation + side * w * amplitude
        transitions += engine.apply([], [PriceTick(symbol="BTCUSDT", mark_price=price, ts=ts)], ts)
    assert [e.type for e in transitions] == ["liquidation"]
    # Clear of the band (equity above (1 + band) x MM with room to spare): one more event.
    away = liquidation + side * 3.0 * band * 0.005 * liquidation
    ts = len(path) + 2
    (cleared,) = engine.apply([], [PriceTick(symbol="BTCUSDT", mark_price=away, ts=ts)], ts)
    assert (cleared.type, cleared.state) == ("liquidation_cleared", "margin_call")


pytestmark = pytest.mark.filterwarnings("error")
