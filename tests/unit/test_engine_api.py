"""The engine's service-facing API: rejections, atomic batches, counts, recompute, verify."""

from __future__ import annotations

import math

import pytest

from monitor.engine import Engine, EngineConfig
from monitor.errors import InputError
from monitor.schema import (
    Fill,
    Funding,
    Instrument,
    IsolatedMargin,
    LedgerEvent,
    MarginSettings,
    PriceTick,
    Tier,
    TieredMargin,
    Transfer,
)

pytestmark = pytest.mark.unit

BTC = Instrument(
    symbol="BTCUSDT",
    kind="linear",
    quote="USDT",
    base="BTC",
    margin=TieredMargin(tiers=(Tier(floor=0, cap=1e12, mmr=0.005, imr=0.01),)),
)


def fill(**overrides: object) -> Fill:
    fields: dict[str, object] = {
        "fill_id": "f",
        "account": "a",
        "symbol": "BTCUSDT",
        "side": "buy",
        "qty": 1.0,
        "price": 100.0,
        "ts": 1,
    }
    return Fill(**(fields | overrides))  # type: ignore[arg-type]


@pytest.fixture
def engine() -> Engine:
    return Engine([BTC])


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (PriceTick(symbol="DOGEUSDT", mark_price=1.0, ts=0), "unknown_instrument"),
        (PriceTick(symbol="BTCUSDT", mark_price=0.0, ts=0), "non_positive_price"),
        (PriceTick(symbol="BTCUSDT", mark_price=math.nan, ts=0), "non_finite_price"),
        (PriceTick(symbol="BTCUSDT", mark_price=math.inf, ts=0), "non_finite_price"),
        (fill(qty=-1.0), "non_positive_quantity"),
        (fill(qty=0.0), "non_positive_quantity"),
        (fill(qty=math.nan), "non_finite_quantity"),
        (fill(price=-5.0), "non_positive_price"),
        (fill(symbol="X"), "unknown_instrument"),
        (fill(fee=math.inf), "non_finite_fee"),
        (fill(fee_asset="DOGE"), "unknown_asset"),
        (fill(account=""), "empty_account"),
        (fill(fill_id=""), "empty_id"),
        (Transfer(transfer_id="t", account="a", asset="BTC", amount=1.0, ts=0), "unknown_asset"),
        (
            Transfer(transfer_id="t", account="a", asset="USDT", amount=math.nan, ts=0),
            "non_finite_amount",
        ),
        (Funding(funding_id="x", account="a", symbol="X", amount=1.0, ts=0), "unknown_instrument"),
        (
            MarginSettings(settings_id="s", account="a", ts=0, leverage=5.0),
            "leverage_without_symbol",
        ),
        (
            MarginSettings(settings_id="s", account="a", ts=0, symbol="BTCUSDT", leverage=0.5),
            "leverage_below_one",
        ),
        (
            MarginSettings(settings_id="s", account="a", ts=0, symbol="BTCUSDT", leverage=math.nan),
            "non_finite_leverage",
        ),
        (
            IsolatedMargin(adjustment_id="m", account="a", symbol="BTCUSDT", amount=1.0, ts=0),
            "not_isolated_position",
        ),
    ],
)
def test_rejection_reasons_are_stable_labels(
    engine: Engine, item: LedgerEvent | PriceTick, reason: str
) -> None:
    assert engine.rejection_reason(item) == reason


@pytest.mark.parametrize(
    "item",
    [
        fill(),
        PriceTick(symbol="BTCUSDT", mark_price=1.0, ts=0),
        Transfer(transfer_id="t", account="a", asset="USDT", amount=-3.0, ts=0),
        MarginSettings(settings_id="s", account="a", ts=0, mode="isolated"),
    ],
)
def test_well_formed_items_are_acceptable(engine: Engine, item: LedgerEvent | PriceTick) -> None:
    assert engine.rejection_reason(item) is None


def test_a_batch_with_a_bad_item_raises_before_changing_anything(engine: Engine) -> None:
    with pytest.raises(InputError, match="non_positive_price"):
        engine.apply([fill()], [PriceTick(symbol="BTCUSDT", mark_price=-1.0, ts=0)], 0)
    assert engine.account_count == 0
    assert engine.mark_price("BTCUSDT") is None


def test_the_last_tick_per_symbol_wins(engine: Engine) -> None:
    engine.apply(
        [],
        [PriceTick(symbol="BTCUSDT", mark_price=p, ts=t) for t, p in enumerate([3.0, 1.0, 2.0])],
        0,
    )
    assert engine.mark_price("BTCUSDT") == 2.0


def test_counts_of_accounts_positions_and_states(engine: Engine) -> None:
    engine.apply(
        [
            Transfer(transfer_id="t", account="a", asset="USDT", amount=100.0, ts=0),
            fill(account="a"),
            fill(fill_id="g", account="b"),
            Transfer(transfer_id="u", account="c", asset="USDT", amount=-1.0, ts=0),
        ],
        [],
        0,
    )
    assert engine.account_count == 3
    assert engine.position_count == 2
    assert engine.state_counts() == {
        "healthy": 1,
        "margin_call": 0,
        "liquidation": 0,
        "bankrupt": 2,
    }


def test_state_counts_take_an_accounts_worst_isolated_position(engine: Engine) -> None:
    engine.apply(
        [
            Transfer(transfer_id="t", account="a", asset="USDT", amount=100.0, ts=0),
            MarginSettings(settings_id="s", account="a", ts=0, mode="isolated"),
            fill(account="a"),
        ],
        [PriceTick(symbol="BTCUSDT", mark_price=50.0, ts=1)],
        1,
    )
    assert engine.state_counts()["bankrupt"] == 1


def test_account_risk_of_an_unknown_account_is_an_input_error(engine: Engine) -> None:
    with pytest.raises(InputError, match="unknown account"):
        engine.account_risk("nobody")


def test_mark_price_is_none_for_unknown_or_unpriced_symbols(engine: Engine) -> None:
    assert engine.mark_price("BTCUSDT") is None
    assert engine.mark_price("NOPE") is None


def test_loaded_positions_get_their_states_from_full_recompute(engine: Engine) -> None:
    book = engine.book
    account = book.account("a")
    book.set_balance(account, 0, 10.0)
    book.load_position(account, 0, 1.0, 100.0)
    engine.apply([], [PriceTick(symbol="BTCUSDT", mark_price=85.0, ts=0)], 0)
    engine.full_recompute()
    assert engine.account_risk("a").state == "bankrupt"
    assert engine.verify() == []


def test_verify_reports_figures_that_drifted_from_a_recompute() -> None:
    engine = Engine([BTC], EngineConfig(price_bands=False))  # with bands: revalued first
    engine.apply(
        [Transfer(transfer_id="t", account="a", asset="USDT", amount=100.0, ts=0), fill()], [], 0
    )
    engine.book.units.upnl[0] += 1.0
    (problem,) = engine.verify()
    assert "upnl cached" in problem
    engine.full_recompute()
    assert engine.verify() == []


def test_verify_reports_a_state_its_figures_contradict(engine: Engine) -> None:
    engine.apply([Transfer(transfer_id="t", account="a", asset="USDT", amount=100.0, ts=0)], [], 0)
    engine.book.units.state[0] = 2
    assert any("figures say healthy" in line for line in engine.verify())


def test_verify_reports_a_holder_index_out_of_step(engine: Engine) -> None:
    engine.apply([fill(), fill(fill_id="g", account="b")], [], 0)
    engine.book.positions.holder_count[0] = 1
    assert any("holders of BTCUSDT" in line for line in engine.verify())


def test_verify_reports_a_broken_unit_row_list(engine: Engine) -> None:
    engine.apply([fill()], [], 0)
    engine.book.units.head[0] = -1
    assert any("unit row lists" in line for line in engine.verify())
