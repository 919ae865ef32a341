"""The pure market and account generator behind `liqmon simulate`."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

from monitor.engine import Engine
from monitor.instruments import load_instrument_file
from monitor.market import (
    CrashSpec,
    MarketSpec,
    PricePath,
    ledger_events,
    plan_accounts,
)
from monitor.models import ModelTable
from monitor.schema import (
    Fill,
    Instrument,
    IsolatedMargin,
    MarginEvent,
    MarginSettings,
    Transfer,
)

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "instruments.example.json"
_encode = msgspec.json.Encoder().encode


@pytest.fixture(scope="module")
def market() -> tuple[list[Instrument], list[float]]:
    loaded = load_instrument_file(EXAMPLE)
    instruments = list(loaded.instruments)
    return instruments, [loaded.reference_prices[i.symbol] for i in instruments]


def _messages(instruments: list[Instrument], start: list[float], spec: MarketSpec) -> list[bytes]:
    plan = plan_accounts(instruments, start, spec)
    path = PricePath.for_instruments(instruments, start, spec)
    ticks = path.ticks(path.advance(50), first_step=1)
    return [_encode(e) for e in ledger_events(plan, instruments, spec)] + [
        _encode(t) for t in ticks
    ]


def _engine_after(
    instruments: list[Instrument], start: list[float], spec: MarketSpec, crash_steps: int = 0
) -> tuple[Engine, list[MarginEvent], list[MarginEvent]]:
    """The real engine fed the opening prices and the ledger, then ``crash_steps`` steps."""
    engine = Engine(instruments)
    path = PricePath.for_instruments(instruments, start, spec)
    plan = plan_accounts(instruments, start, spec)
    ledger = list(ledger_events(plan, instruments, spec))
    opening = engine.apply(ledger, path.ticks(path.start[None, :], 0), now_ms=spec.start_ts)
    later: list[MarginEvent] = []
    if crash_steps:
        ticks = path.ticks(path.advance(crash_steps), 1)
        later = engine.apply([], ticks, now_ms=ticks[-1].ts)
    return engine, opening, later


def test_same_seed_gives_the_same_messages(market: tuple[list[Instrument], list[float]]) -> None:
    instruments, start = market
    spec = MarketSpec(seed=7, accounts=300, step_s=0.1, crash=CrashSpec(at_s=1.0))
    assert _messages(instruments, start, spec) == _messages(instruments, start, spec)


def test_different_seeds_give_different_messages(
    market: tuple[list[Instrument], list[float]],
) -> None:
    instruments, start = market
    first = _messages(instruments, start, MarketSpec(seed=1, accounts=50))
    second = _messages(instruments, start, MarketSpec(seed=2, accounts=50))
    assert first != second


def test_prices_do_not_depend_on_how_steps_are_batched(
    market: tuple[list[Instrument], list[float]],
) -> None:
    instruments, start = market
    spec = MarketSpec(seed=3, step_s=0.5, jump_rate_per_s=0.5, crash=CrashSpec(at_s=2.0))
    whole = PricePath.for_instruments(instruments, start, spec).advance(40)
    parts = PricePath.for_instruments(instruments, start, spec)
    pieces = np.vstack([parts.advance(n) for n in (1, 12, 0, 27)])
    np.testing.assert_array_equal(whole, pieces)


def test_ticks_carry_symbol_price_and_step_time(
    market: tuple[list[Instrument], list[float]],
) -> None:
    instruments, start = market
    spec = MarketSpec(seed=0, step_s=0.25, start_ts=1_000_000)
    path = PricePath.for_instruments(instruments, start, spec)
    prices = path.advance(3)
    ticks = path.ticks(prices, first_step=1)
    assert len(ticks) == 3 * len(instruments)
    assert [t.ts for t in ticks[:: len(instruments)]] == [1_000_250, 1_000_500, 1_000_750]
    assert ticks[0].symbol == instruments[0].symbol
    assert ticks[-1].mark_price == prices[-1, -1]


def test_start_prices_are_the_reference_prices(
    market: tuple[list[Instrument], list[float]],
) -> None:
    instruments, start = market
    path = PricePath.for_instruments(instruments, start, MarketSpec())
    assert path.start.tolist() == start


def test_crash_lowers_every_price_by_roughly_the_configured_drop(
    market: tuple[list[Instrument], list[float]],
) -> None:
    instruments, start = market
    crash = CrashSpec(at_s=5.0, drop=0.3, duration_s=3.0, dispersion=0.25)
    spec = MarketSpec(seed=11, step_s=0.1, crash=crash)
    prices = PricePath.for_instruments(instruments, start, spec).advance(100)  # 10 s
    before, after = prices[49] / start, prices[-1] / start
    assert np.all(np.abs(before - 1) < 0.05)
    assert np.all(after < 1 - 0.3 * 0.75 + 0.05)
    assert np.all(after > 1 - 0.3 * 1.25 - 0.05)


def test_without_crash_prices_stay_near_their_start(
    market: tuple[list[Instrument], list[float]],
) -> None:
    instruments, start = market
    spec = MarketSpec(seed=11, step_s=0.1, jump_rate_per_s=0.0)
    prices = PricePath.for_instruments(instruments, start, spec).advance(100)
    assert np.all(np.abs(prices[-1] / start - 1) < 0.05)


def test_instruments_on_one_base_asset_move_together(
    market: tuple[list[Instrument], list[float]],
) -> None:
    instruments, start = market
    symbols = [i.symbol for i in instruments]
    a, b = symbols.index("BTCUSDT"), symbols.index("BTCUSDT-SIZED")
    prices = PricePath.for_instruments(instruments, start, MarketSpec(seed=5)).advance(200)
    np.testing.assert_allclose(prices[:, a] / start[a], prices[:, b] / start[b], rtol=1e-6)


def test_every_account_starts_healthy_in_the_engine(
    market: tuple[list[Instrument], list[float]],
) -> None:
    instruments, start = market
    spec = MarketSpec(seed=5, accounts=3_000, isolated_fraction=0.3)
    engine, events, _ = _engine_after(instruments, start, spec)
    assert events == []
    assert engine.ignored == {}
    assert engine.state_counts()["healthy"] == engine.account_count == 3_000


def test_accounts_keep_a_margin_cushion_at_the_start(
    market: tuple[list[Instrument], list[float]],
) -> None:
    instruments, start = market
    spec = MarketSpec(seed=6, accounts=300, isolated_fraction=0.5)
    engine, _, _ = _engine_after(instruments, start, spec)
    for account in plan_accounts(instruments, start, spec).accounts:
        risk = engine.account_risk(account)
        units = [p for p in risk.positions if p.isolated_margin is not None]
        if risk.mode == "cross":
            assert risk.equity >= 1.15 * risk.initial_margin
        for position in units:
            assert position.isolated_margin is not None
            assert position.isolated_margin >= 1.15 * position.initial_margin - 0.01


def test_under_crash_some_accounts_are_liquidated_by_the_engine(
    market: tuple[list[Instrument], list[float]],
) -> None:
    instruments, start = market
    spec = MarketSpec(seed=5, accounts=3_000, step_s=0.5, crash=CrashSpec(at_s=1.0))
    engine, _, events = _engine_after(instruments, start, spec, crash_steps=20)
    kinds = {e.type for e in events}
    assert "liquidation" in kinds
    states = engine.state_counts()
    liquidatable = states["liquidation"] + states["bankrupt"]
    assert 0.05 * 3_000 < liquidatable < 0.95 * 3_000


def test_leverage_never_exceeds_the_bracket_maximum(
    market: tuple[list[Instrument], list[float]],
) -> None:
    instruments, start = market
    plan = plan_accounts(instruments, start, MarketSpec(seed=9, accounts=5_000))
    table = ModelTable.from_instruments(instruments)
    tiered = ~np.isnan(plan.leverage)
    ix = plan.position_instrument[tiered]
    notional = table.notional(ix, plan.qty[tiered], plan.price[tiered])
    allowed = 1.0 / table.layout.imr[ix, table.bracket(ix, notional)]
    assert np.all(plan.leverage[tiered] <= allowed + 1e-9)
    assert np.all(plan.leverage[tiered] == np.round(plan.leverage[tiered]))


def test_each_account_holds_one_to_three_distinct_instruments(
    market: tuple[list[Instrument], list[float]],
) -> None:
    instruments, start = market
    plan = plan_accounts(instruments, start, MarketSpec(seed=4, accounts=2_000))
    counts = np.bincount(plan.position_account, minlength=2_000)
    assert counts.min() == 1
    assert counts.max() == 3
    pairs = plan.position_account * len(instruments) + plan.position_instrument
    assert len(np.unique(pairs)) == len(pairs)
    assert len(set(plan.accounts)) == 2_000


def test_ledger_is_deposit_then_settings_then_fills_then_allocations_per_account(
    market: tuple[list[Instrument], list[float]],
) -> None:
    instruments, start = market
    spec = MarketSpec(seed=2, accounts=400, isolated_fraction=0.5)
    plan = plan_accounts(instruments, start, spec)
    events = list(ledger_events(plan, instruments, spec))
    assert len(events) == plan.ledger_count
    rank = {Transfer: 0, MarginSettings: 1, Fill: 2, IsolatedMargin: 3}
    by_account: dict[str, list[int]] = {}
    for event in events:
        by_account.setdefault(event.account, []).append(rank[type(event)])
    assert list(by_account) == plan.accounts  # accounts are contiguous and in order
    assert all(ranks == sorted(ranks) and ranks[0] == 0 for ranks in by_account.values())
    isolated = {plan.accounts[i] for i in np.flatnonzero(plan.isolated)}
    modes = {e.account for e in events if isinstance(e, MarginSettings) and e.mode == "isolated"}
    adjusted = {e.account for e in events if isinstance(e, IsolatedMargin)}
    assert modes == adjusted == isolated


def test_fills_open_at_the_start_price_with_unique_ids(
    market: tuple[list[Instrument], list[float]],
) -> None:
    instruments, start = market
    spec = MarketSpec(seed=2, accounts=300)
    events = list(ledger_events(plan_accounts(instruments, start, spec), instruments, spec))
    fills = [e for e in events if isinstance(e, Fill)]
    price_of = {i.symbol: p for i, p in zip(instruments, start, strict=True)}
    assert all(f.price == price_of[f.symbol] and f.qty > 0 for f in fills)
    assert len({f.fill_id for f in fills}) == len(fills)


def test_size_scaled_positions_carry_no_leverage_setting(
    market: tuple[list[Instrument], list[float]],
) -> None:
    instruments, start = market
    spec = MarketSpec(seed=2, accounts=2_000)
    events = list(ledger_events(plan_accounts(instruments, start, spec), instruments, spec))
    leverage_symbols = {e.symbol for e in events if isinstance(e, MarginSettings) and e.symbol}
    assert "BTCUSDT-SIZED" not in leverage_symbols
    assert any(isinstance(e, Fill) and e.symbol == "BTCUSDT-SIZED" for e in events)


def test_every_account_holds_the_positions_asked_for(
    market: tuple[list[Instrument], list[float]],
) -> None:
    instruments, start = market
    spec = MarketSpec(seed=4, accounts=500, positions_per_account=3)
    plan = plan_accounts(instruments, start, spec)
    held = np.bincount(plan.position_account, minlength=500)
    assert held.tolist() == [3] * 500
    pairs = set(zip(plan.position_account.tolist(), plan.position_instrument.tolist(), strict=True))
    assert len(pairs) == 1_500  # three different instruments each
    default = plan_accounts(instruments, start, MarketSpec(seed=4, accounts=500))
    assert set(np.bincount(default.position_account).tolist()) == {1, 2, 3}


def test_more_positions_per_account_than_instruments_is_refused(
    market: tuple[list[Instrument], list[float]],
) -> None:
    instruments, start = market
    spec = MarketSpec(accounts=5, positions_per_account=len(instruments) + 1)
    with pytest.raises(ValueError, match="one position per instrument at most"):
        plan_accounts(instruments, start, spec)
