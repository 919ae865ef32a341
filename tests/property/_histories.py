"""Random ledger histories and price paths for the reference property tests.

Four instruments (one settling in BTC), BTC collateral and wrong-way ETH collateral
priced by ETHUSDT, three accounts; a history is the set of symbols priced before any
fill, then cycles of ledger operations and ticks (see :func:`materialise`).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from monitor.schema import (
    CollateralAsset,
    Fill,
    Funding,
    Instrument,
    IsolatedMargin,
    LedgerEvent,
    MarginSettings,
    PriceTick,
    RateCurve,
    SizeScaledMargin,
    Tier,
    TieredMargin,
    Transfer,
)

__all__ = [
    "ACCOUNTS",
    "BASE",
    "COLLATERAL",
    "INSTRUMENTS",
    "Cycle",
    "histories",
    "materialise",
    "opening",
]

Cycle = tuple[list[LedgerEvent], list[PriceTick]]

INSTRUMENTS = [
    Instrument(
        symbol="BTCUSDT",
        kind="linear",
        quote="USDT",
        base="BTC",
        margin=TieredMargin(
            tiers=(
                Tier(floor=0, cap=50_000, mmr=0.004, imr=0.008),
                Tier(floor=50_000, cap=250_000, mmr=0.005, imr=0.01),
                Tier(floor=250_000, cap=1e12, mmr=0.01, max_leverage=50),
            )
        ),
    ),
    Instrument(
        symbol="ETHUSDT",
        kind="linear",
        quote="USDT",
        base="ETH",
        margin=SizeScaledMargin(
            im=RateCurve(base=0.02, slope=0.0005), mm=RateCurve(base=0.01, slope=0.0005)
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
                Tier(floor=10_000, cap=1e12, mmr=0.025, max_leverage=20, cum=150.0),
            )
        ),
    ),
    Instrument(  # settles in BTC: its figures are converted at BTC's price
        symbol="ETHBTC",
        kind="linear",
        quote="BTC",
        base="ETH",
        margin=TieredMargin(tiers=(Tier(floor=0, cap=1e9, mmr=0.01, imr=0.02),)),
    ),
]
COLLATERAL = (
    CollateralAsset(asset="BTC", haircut=0.1),
    CollateralAsset(asset="ETH", haircut=0.2, price_symbol="ETHUSDT"),  # wrong-way collateral
)
BASE = {"BTCUSDT": 30_000.0, "ETHUSDT": 2_000.0, "SOLUSDT": 100.0, "ETHBTC": 0.066, "BTC": 30_000.0}
ACCOUNTS = ("a0", "a1", "a2")

accounts = st.sampled_from(ACCOUNTS)
symbols = st.sampled_from([i.symbol for i in INSTRUMENTS])
moves = st.floats(min_value=0.7, max_value=1.3, allow_nan=False)


def _contracts(symbol: str, notional: float) -> float:
    size = {"SOLUSDT": 10.0}.get(symbol, 1.0)
    usd = BASE[symbol] * (BASE["BTC"] if symbol == "ETHBTC" else 1.0)
    return round(notional / usd / size, 3) or 0.001


ledger_ops = st.one_of(
    st.tuples(
        st.just("fill"),
        accounts,
        symbols,
        st.sampled_from(["buy", "sell"]),
        st.sampled_from([300.0, 2_000.0, 9_000.0, 40_000.0, 120_000.0]),
        moves,
        st.sampled_from([0.0, 1.5, -0.2]),
        st.sampled_from([None, None, "BTC"]),
    ),
    st.tuples(
        st.just("transfer"),
        accounts,
        st.sampled_from(["USDT", "USDT", "BTC", "ETH"]),
        st.sampled_from([10_000.0, 2_500.0, -1_500.0, 0.4, -0.1]),
    ),
    st.tuples(st.just("funding"), accounts, symbols, st.sampled_from([-12.5, 4.0])),
    st.tuples(
        st.just("settings"),
        accounts,
        st.sampled_from([None, "cross", "isolated", "isolated"]),
        symbols,
        st.sampled_from([None, 3.0, 20.0, 125.0]),
    ),
    st.tuples(st.just("isolated"), accounts, symbols, st.sampled_from([300.0, -150.0, -1e6])),
    st.tuples(st.just("duplicate"), st.integers(1, 6)),
)
tick_ops = st.tuples(st.sampled_from(sorted(BASE)), moves)
histories = st.tuples(
    st.sets(st.sampled_from(sorted(BASE))),  # the symbols priced before any fill
    st.lists(
        st.tuples(st.lists(ledger_ops, max_size=7), st.lists(tick_ops, max_size=4)),
        min_size=1,
        max_size=10,
    ),
)


def ledger_event(op: tuple[Any, ...], n: int, ts: int, history: list[LedgerEvent]) -> LedgerEvent:
    kind = op[0]
    if kind == "duplicate":
        if history:
            return history[-min(op[1], len(history))]
        return Transfer(transfer_id=f"t{n}", account="a0", asset="USDT", amount=1.0, ts=ts)
    if kind == "fill":
        _, account, symbol, side, notional, move, fee, fee_asset = op
        return Fill(
            fill_id=f"f{n}",
            account=account,
            symbol=symbol,
            side=side,
            qty=_contracts(symbol, notional),
            price=round(BASE[symbol] * move, 6),
            fee=fee * (1e-5 if fee_asset == "BTC" else 1.0),
            fee_asset=fee_asset,
            ts=ts,
        )
    if kind == "transfer":
        _, account, asset, amount = op
        scale = {"USDT": 1.0, "BTC": 1e-4, "ETH": 1e-3}[asset]
        return Transfer(
            transfer_id=f"t{n}", account=account, asset=asset, amount=amount * scale, ts=ts
        )
    if kind == "funding":
        _, account, symbol, amount = op
        amount *= 1e-5 if symbol == "ETHBTC" else 1.0
        return Funding(funding_id=f"u{n}", account=account, symbol=symbol, amount=amount, ts=ts)
    if kind == "settings":
        _, account, mode, symbol, leverage = op
        return MarginSettings(
            settings_id=f"s{n}", account=account, mode=mode, symbol=symbol, leverage=leverage, ts=ts
        )
    _, account, symbol, amount = op
    amount *= 1e-5 if symbol == "ETHBTC" else 1.0
    return IsolatedMargin(
        adjustment_id=f"m{n}", account=account, symbol=symbol, amount=amount, ts=ts
    )


def opening(priced: set[str]) -> Cycle:
    """Deposits (0, 5,000 and 10,000 USDT) and the ticks of ``priced`` at their base."""
    deposits: list[LedgerEvent] = [
        Transfer(transfer_id=f"d{k}", account=a, asset="USDT", amount=5_000.0 * k, ts=0)
        for k, a in enumerate(ACCOUNTS)
    ]
    return deposits, [PriceTick(symbol=s, mark_price=BASE[s], ts=0) for s in sorted(priced)]


def materialise(raw: list[tuple[list[tuple[Any, ...]], list[tuple[str, float]]]]) -> list[Cycle]:
    """The cycles of a drawn history: ids numbered, ``duplicate`` ops redelivering."""
    history: list[LedgerEvent] = []
    cycles = []
    n = 0
    for cycle, (ops, ticks) in enumerate(raw, start=1):
        ledger = []
        for op in ops:
            n += 1
            event = ledger_event(op, n, cycle * 1_000, history)
            history.append(event)
            ledger.append(event)
        prices = [
            PriceTick(symbol=s, mark_price=round(BASE[s] * m, 6), ts=cycle * 1_000 + k)
            for k, (s, m) in enumerate(ticks)
        ]
        cycles.append((ledger, prices))
    return cycles
