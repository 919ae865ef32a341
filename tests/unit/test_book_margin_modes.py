"""Cross and isolated margin, and collateral in several assets with haircuts."""

from __future__ import annotations

import pytest

from monitor.engine import Engine, EngineConfig
from monitor.errors import ConfigError
from monitor.schema import (
    CollateralAsset,
    Fill,
    Funding,
    Instrument,
    IsolatedMargin,
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


def fill(fill_id: str, side: str, qty: float, price: float, account: str = "a") -> Fill:
    return Fill(
        fill_id=fill_id,
        account=account,
        symbol="BTCUSDT",
        side=side,
        qty=qty,
        price=price,
        ts=1,  # type: ignore[arg-type]
    )


def deposit(amount: float, asset: str = "USDT", account: str = "a", tid: str = "t0") -> Transfer:
    return Transfer(transfer_id=tid, account=account, asset=asset, amount=amount, ts=0)


def tick(price: float, ts: int = 2, symbol: str = "BTCUSDT") -> PriceTick:
    return PriceTick(symbol=symbol, mark_price=price, ts=ts)


def isolated(account: str = "a", leverage: float = 10.0) -> MarginSettings:
    return MarginSettings(
        settings_id=f"s-{account}",
        account=account,
        ts=0,
        mode="isolated",
        symbol="BTCUSDT",
        leverage=leverage,
    )


@pytest.fixture
def engine() -> Engine:
    e = Engine([BTC])
    e.apply([deposit(10_000.0), isolated()], [tick(30_000.0, ts=0)], 0)
    return e


def wallet(engine: Engine, account: str = "a", asset: int = 0) -> float:
    return float(engine.book.accounts.balance[engine.book.account_index[account], asset])


def isolated_margin(engine: Engine) -> float | None:
    return engine.account_risk("a").positions[0].isolated_margin


def test_opening_isolated_moves_the_initial_margin_from_the_wallet(engine: Engine) -> None:
    engine.apply([fill("f1", "buy", 1.0, 30_000.0)], [], 1)
    assert isolated_margin(engine) == pytest.approx(3_000.0)
    assert wallet(engine) == pytest.approx(7_000.0)


def test_reducing_isolated_releases_margin_pro_rata_and_pnl_goes_to_the_wallet(
    engine: Engine,
) -> None:
    engine.apply([fill("f1", "buy", 1.0, 30_000.0), fill("f2", "sell", 0.5, 31_000.0)], [], 1)
    assert isolated_margin(engine) == pytest.approx(1_500.0)
    assert wallet(engine) == pytest.approx(7_000.0 + 1_500.0 + 500.0)
    assert engine.verify() == []


def test_closing_isolated_returns_all_margin_to_the_wallet(engine: Engine) -> None:
    engine.apply([fill("f1", "buy", 1.0, 30_000.0), fill("f2", "sell", 1.0, 29_000.0)], [], 1)
    assert wallet(engine) == pytest.approx(9_000.0)
    assert engine.account_risk("a").equity == pytest.approx(9_000.0)


def test_flipping_isolated_releases_then_allocates_for_the_new_side(engine: Engine) -> None:
    engine.apply([fill("f1", "buy", 1.0, 30_000.0), fill("f2", "sell", 3.0, 30_000.0)], [], 1)
    assert isolated_margin(engine) == pytest.approx(6_000.0)
    assert wallet(engine) == pytest.approx(4_000.0)


def test_an_isolated_position_is_judged_alone(engine: Engine) -> None:
    engine.apply([fill("f1", "buy", 1.0, 30_000.0)], [], 1)
    # Margin 3000 against a 2850 fall leaves 150 > MM 135.75; a 2900 fall leaves 100 < 135.5.
    calls = engine.apply([], [tick(27_150.0)], 2)
    assert [(e.type, e.symbol) for e in calls] == [("margin_call", "BTCUSDT")]
    events = engine.apply([], [tick(27_100.0, ts=3)], 3)
    assert [(e.type, e.symbol) for e in events] == [("liquidation", "BTCUSDT")]
    risk = engine.account_risk("a")
    assert risk.state == "liquidation"
    assert risk.positions[0].state == "liquidation"
    assert wallet(engine) == pytest.approx(7_000.0)


def test_the_same_position_in_cross_survives_on_the_wallet() -> None:
    engine = Engine([BTC])
    engine.apply([deposit(10_000.0)], [tick(30_000.0, ts=0)], 0)
    engine.apply([fill("f1", "buy", 1.0, 30_000.0)], [], 1)
    assert engine.apply([], [tick(27_100.0, ts=3)], 3) == []
    assert engine.account_risk("a").state == "healthy"


def test_funding_on_an_isolated_position_goes_to_its_margin(engine: Engine) -> None:
    engine.apply([fill("f1", "buy", 1.0, 30_000.0)], [], 1)
    engine.apply(
        [Funding(funding_id="x", account="a", symbol="BTCUSDT", amount=-12.5, ts=2)], [], 2
    )
    assert isolated_margin(engine) == pytest.approx(2_987.5)
    assert wallet(engine) == pytest.approx(7_000.0)


def test_isolated_margin_events_move_margin_between_wallet_and_position(engine: Engine) -> None:
    engine.apply([fill("f1", "buy", 1.0, 30_000.0)], [], 1)
    add = IsolatedMargin(adjustment_id="m1", account="a", symbol="BTCUSDT", amount=500.0, ts=2)
    assert engine.rejection_reason(add) is None
    engine.apply([add], [], 2)
    assert isolated_margin(engine) == pytest.approx(3_500.0)
    assert wallet(engine) == pytest.approx(6_500.0)
    assert engine.verify() == []


def test_isolated_margin_for_a_cross_position_is_rejected_and_ignored() -> None:
    engine = Engine([BTC])
    engine.apply([deposit(10_000.0), fill("f1", "buy", 1.0, 30_000.0)], [], 1)
    add = IsolatedMargin(adjustment_id="m1", account="a", symbol="BTCUSDT", amount=500.0, ts=2)
    assert engine.rejection_reason(add) == "not_isolated_position"
    engine.apply([add], [], 2)
    assert engine.ignored == {"not_isolated_position": 1}
    assert wallet(engine) == pytest.approx(10_000.0)


def test_releasing_more_isolated_margin_than_allocated_is_rejected(engine: Engine) -> None:
    engine.apply([fill("f1", "buy", 1.0, 30_000.0)], [], 1)
    take = IsolatedMargin(adjustment_id="m1", account="a", symbol="BTCUSDT", amount=-3_001.0, ts=2)
    assert engine.rejection_reason(take) == "insufficient_isolated_margin"


def test_a_mode_change_applies_to_positions_opened_afterwards(engine: Engine) -> None:
    engine.apply([fill("f1", "buy", 1.0, 30_000.0)], [], 1)
    to_cross = MarginSettings(settings_id="s2", account="a", ts=2, mode="cross")
    engine.apply([to_cross], [], 2)
    assert engine.account_risk("a").positions[0].isolated_margin is not None
    engine.apply([fill("f2", "sell", 1.0, 30_000.0), fill("f3", "buy", 1.0, 30_000.0)], [], 3)
    risk = engine.account_risk("a")
    assert risk.mode == "cross"
    assert risk.positions[0].isolated_margin is None
    assert engine.verify() == []


def test_leverage_sets_the_initial_margin_rate() -> None:
    engine = Engine([BTC])
    engine.apply([deposit(10_000.0), fill("f1", "buy", 1.0, 30_000.0)], [], 1)
    assert engine.account_risk("a").initial_margin == pytest.approx(300.0)
    engine.apply(
        [MarginSettings(settings_id="s", account="a", ts=2, symbol="BTCUSDT", leverage=20.0)], [], 2
    )
    assert engine.account_risk("a").initial_margin == pytest.approx(1_500.0)


# --------------------------------------------------------------------------- collateral

BTC_COLLATERAL = EngineConfig(collateral=(CollateralAsset(asset="BTC", haircut=0.1),))


def test_collateral_is_worth_nothing_until_priced_then_its_haircut_value() -> None:
    engine = Engine([BTC], BTC_COLLATERAL)
    engine.apply([deposit(2.0, asset="BTC")], [], 0)
    assert engine.account_risk("a").collateral_value == 0.0
    engine.apply([], [tick(30_000.0, symbol="BTC")], 1)
    assert engine.account_risk("a").collateral_value == pytest.approx(54_000.0)
    assert engine.account_risk("a").collateral == {"BTC": 2.0}


def test_haircuts_apply_to_positive_balances_only() -> None:
    engine = Engine([BTC], BTC_COLLATERAL)
    engine.apply(
        [deposit(1_000.0), deposit(-0.01, asset="BTC", tid="t1")], [tick(30_000.0, symbol="BTC")], 0
    )
    assert engine.account_risk("a").collateral_value == pytest.approx(700.0)


def test_a_collateral_price_tick_can_trigger_a_margin_call() -> None:
    engine = Engine([BTC], BTC_COLLATERAL)
    engine.apply(
        [deposit(0.1, asset="BTC"), fill("f1", "buy", 1.0, 30_000.0)],
        [tick(30_000.0, symbol="BTC")],
        0,
    )
    # Collateral 2700 against IM 300 / MM 150: healthy. At 3000 BTC collateral is 270 < IM.
    events = engine.apply([], [tick(3_000.0, symbol="BTC", ts=5)], 5)
    assert [(e.type, e.trigger, e.trigger_ts) for e in events] == [("margin_call", "price", 5)]
    assert engine.verify() == []


def test_a_price_symbol_can_value_both_an_instrument_and_a_collateral_asset() -> None:
    config = EngineConfig(collateral=(CollateralAsset(asset="BTC", price_symbol="BTCUSDT"),))
    engine = Engine([BTC], config)
    engine.apply(
        [deposit(1.0, asset="BTC"), fill("f1", "sell", 1.0, 30_000.0)], [tick(30_000.0)], 0
    )
    engine.apply([], [tick(20_000.0, ts=3)], 3)
    risk = engine.account_risk("a")
    assert risk.equity == pytest.approx(20_000.0 + 10_000.0)
    assert engine.verify() == []


def test_a_transfer_in_an_unconfigured_asset_is_rejected() -> None:
    engine = Engine([BTC])
    assert engine.rejection_reason(deposit(1.0, asset="DOGE")) == "unknown_asset"


def test_an_instrument_settling_in_an_unknown_asset_is_a_config_error() -> None:
    usdc = Instrument(symbol="BTCUSDC", kind="linear", quote="USDC", base="BTC", margin=BTC.margin)
    with pytest.raises(ConfigError, match="settles in USDC"):
        Engine([usdc])


def test_an_instrument_settling_in_a_collateral_asset_is_valued_at_its_price() -> None:
    usdc = Instrument(symbol="BTCUSDC", kind="linear", quote="USDC", base="BTC", margin=BTC.margin)
    engine = Engine([usdc], EngineConfig(collateral=(CollateralAsset(asset="USDC", haircut=0.0),)))
    engine.apply(
        [
            deposit(1_000.0, asset="USDC"),
            Fill(
                fill_id="f", account="a", symbol="BTCUSDC", side="buy", qty=1.0, price=100.0, ts=1
            ),
        ],
        [tick(0.5, symbol="USDC"), PriceTick(symbol="BTCUSDC", mark_price=110.0, ts=1)],
        1,
    )
    risk = engine.account_risk("a")
    assert risk.equity == pytest.approx((1_000.0 + 10.0) * 0.5)
    assert risk.positions[0].maintenance_margin == pytest.approx(110.0 * 0.005 * 0.5)
    assert engine.verify() == []
