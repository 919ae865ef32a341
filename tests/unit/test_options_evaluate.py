"""Options and inverse contracts through ``liqmon evaluate`` and the engine.

Margin figures are Deribit's published rules for short options (https://www.deribit.com/
pages/docs/options, "Margins") worked out by hand below, with the arithmetic written out;
settlement follows the examples on the same page; inverse liquidation prices are plugged
back into the inverse PnL formula written out here, independent of the engine."""

from __future__ import annotations

import msgspec
import pytest
from vollib.black import black as oracle_value
from vollib.black.greeks import analytical as oracle

from monitor.engine import Engine, EngineConfig
from monitor.errors import InputError
from monitor.evaluate import evaluate
from monitor.schema import (
    Delivery,
    EvaluateAccount,
    EvaluatePosition,
    EvaluateRequest,
    Fill,
    Instrument,
    OptionStandardMargin,
    PriceTick,
    RateCurve,
    SizeScaledMargin,
    Tier,
    TieredMargin,
    Transfer,
)

DAY = 86_400_000
NOW = 1_700_000_000_000
EXPIRY = NOW + 30 * DAY
STANDARD = {"model": "option_standard"}


def _option(symbol: str, strike: float, kind: str, settle: str = "BTC") -> Instrument:
    return msgspec.convert(
        {
            "symbol": symbol,
            "kind": "option",
            "quote": "USD" if settle == "BTC" else "USDC",
            "base": "BTC",
            "settle": settle,
            "underlying": "BTC-USD",
            "strike": strike,
            "expiry": EXPIRY,
            "option_type": kind,
            "margin": STANDARD,
        },
        Instrument,
    )


def _request(instruments, prices, positions, collateral, valuation="BTC", vols=None):
    return EvaluateRequest(
        instruments=tuple(instruments),
        prices=prices,
        vols=vols or {},
        now=NOW,
        valuation_asset=valuation,
        accounts=(
            EvaluateAccount(
                account="a",
                collateral=collateral,
                positions=tuple(EvaluatePosition(**p) for p in positions),
            ),
        ),
    )


@pytest.mark.parametrize(
    ("strike", "kind", "price", "initial", "maintenance"),
    [
        # OTM call, K 50,000, S 45,000: OTM = 5,000, 0.15 - 5,000/45,000 = 0.0389 < 0.10,
        # IM = 0.10 + 0.02 = 0.12; MM = 0.075 + 0.02 = 0.095 (BTC per contract).
        (50_000.0, "call", 0.02, 0.12, 0.095),
        # ITM call, K 40,000: OTM = 0, IM = 0.15 + 0.15 = 0.30; MM = 0.075 + 0.15 = 0.225.
        (40_000.0, "call", 0.15, 0.30, 0.225),
        # OTM put, K 40,000: OTM = 5,000, IM = max(0.10 + 0.01, MM); MM = max(0.075,
        # 0.075 x 0.01) + 0.01 = 0.085, so IM = 0.11.
        (40_000.0, "put", 0.01, 0.11, 0.085),
        # ITM put, K 60,000: OTM = 0, MM = max(0.075, 0.075 x 0.36) + 0.36 = 0.435,
        # IM = max(0.15 + 0.36, 0.435) = 0.51.
        (60_000.0, "put", 0.36, 0.51, 0.435),
    ],
)
def test_short_inverse_option_margin_follows_deribits_rules(
    strike, kind, price, initial, maintenance
) -> None:
    instrument = _option("OPT", strike, kind)
    request = _request(
        [instrument],
        {"BTC-USD": 45_000.0, "OPT": price},
        [{"symbol": "OPT", "qty": -2.0, "entry_price": price}],
        {"BTC": 1.0},
    )
    (account,) = evaluate(request)
    (position,) = account.positions
    assert position.mark_price == pytest.approx(price, rel=1e-9)  # vol implied, mark kept
    assert position.initial_margin == pytest.approx(2 * initial, rel=1e-9)
    assert position.maintenance_margin == pytest.approx(2 * maintenance, rel=1e-9)
    # Premium-paid accounting: the short's value counts against equity.
    assert account.equity == pytest.approx(1.0 - 2 * price, rel=1e-9)


def test_long_options_need_no_margin_and_add_their_value() -> None:
    request = _request(
        [_option("OPT", 50_000.0, "call")],
        {"BTC-USD": 45_000.0, "OPT": 0.02},
        [{"symbol": "OPT", "qty": 3.0, "entry_price": 0.01}],
        {"BTC": 1.0},
    )
    (account,) = evaluate(request)
    assert account.initial_margin == 0.0
    assert account.maintenance_margin == 0.0
    assert account.equity == pytest.approx(1.0 + 3 * 0.02)
    assert account.positions[0].unrealized_pnl == pytest.approx(3 * (0.02 - 0.01))


def test_linear_option_margin_is_the_same_fractions_of_the_underlying() -> None:
    # K 50,000 call on S 45,000 at 900 USDC: IM = 0.10 x 45,000 + 900 = 5,400;
    # MM = 0.075 x 45,000 + 900 = 4,275 (USDC per contract).
    request = _request(
        [_option("OPT", 50_000.0, "call", settle="USDC")],
        {"BTC-USD": 45_000.0, "OPT": 900.0},
        [{"symbol": "OPT", "qty": -1.0, "entry_price": 900.0}],
        {"USDC": 10_000.0},
        valuation="USDC",
    )
    (position,) = evaluate(request)[0].positions
    assert position.initial_margin == pytest.approx(5_400.0, rel=1e-9)
    assert position.maintenance_margin == pytest.approx(4_275.0, rel=1e-9)


def test_vol_marks_an_inverse_option_at_black76_over_the_underlying() -> None:
    s, k, vol, years = 45_000.0, 50_000.0, 0.6, 30 / 365
    request = _request(
        [_option("OPT", k, "call")],
        {"BTC-USD": s},
        [{"symbol": "OPT", "qty": -2.0, "entry_price": 0.02}],
        {"BTC": 1.0},
        vols={"OPT": vol},
    )
    (account,) = evaluate(request)
    (position,) = account.positions
    assert position.mark_price == pytest.approx(oracle_value("c", s, k, years, 0, vol) / s)
    assert position.mark_iv == vol
    assert position.greeks is not None
    # Greeks per position: per-unit Greeks x qty (x contract size 1), quote currency.
    assert position.greeks.delta == pytest.approx(-2 * oracle.delta("c", s, k, years, 0, vol))
    assert position.greeks.gamma == pytest.approx(-2 * oracle.gamma("c", s, k, years, 0, vol))
    assert position.greeks.vega == pytest.approx(-2 * oracle.vega("c", s, k, years, 0, vol))
    assert position.greeks.theta == pytest.approx(-2 * oracle.theta("c", s, k, years, 0, vol))
    assert account.greeks["BTC-USD"] == position.greeks


def test_an_option_without_underlying_price_is_an_input_error() -> None:
    request = _request(
        [_option("OPT", 50_000.0, "call")],
        {},
        [{"symbol": "OPT", "qty": -1.0, "entry_price": 0.02}],
        {"BTC": 1.0},
        vols={"OPT": 0.5},
    )
    with pytest.raises(InputError, match="add its underlying BTC-USD to prices"):
        evaluate(request)


# --------------------------------------------------------------------------- inverse


def _inverse(margin) -> Instrument:
    return Instrument(
        symbol="BTC-PERPETUAL",
        kind="inverse",
        quote="USD",
        base="BTC",
        contract_size=10.0,
        margin=margin,
    )


MARGIN = SizeScaledMargin(
    im=RateCurve(base=0.04, slope=0.00005), mm=RateCurve(base=0.02, slope=0.00005)
)


def _reference(collateral: float, qty: float, entry: float, price: float) -> tuple[float, float]:
    """Equity and MM in BTC at ``price``, straight from the inverse formulas."""
    usd = qty * 10.0
    equity = collateral + usd * (1.0 / entry - 1.0 / price)
    coin = abs(usd) / price
    return equity, coin * (0.02 + 0.00005 * coin)


@pytest.mark.parametrize("qty", [5_000.0, -5_000.0, 120_000.0, -120_000.0])
def test_inverse_liquidation_and_bankruptcy_prices_plug_back(qty: float) -> None:
    entry, mark, collateral = 40_000.0, 41_000.0, 0.5
    request = _request(
        [_inverse(MARGIN)],
        {"BTC-PERPETUAL": mark},
        [{"symbol": "BTC-PERPETUAL", "qty": qty, "entry_price": entry}],
        {"BTC": collateral},
    )
    (account,) = evaluate(request)
    (position,) = account.positions
    equity, maintenance = _reference(collateral, qty, entry, mark)
    assert account.equity == pytest.approx(equity, rel=1e-12)
    assert position.maintenance_margin == pytest.approx(maintenance, rel=1e-12)
    assert position.liquidation_price is not None
    assert position.bankruptcy_price is not None
    equity_at, mm_at = _reference(collateral, qty, entry, position.liquidation_price)
    assert equity_at == pytest.approx(mm_at, rel=1e-9)
    assert _reference(collateral, qty, entry, position.bankruptcy_price)[0] == pytest.approx(
        0.0, abs=1e-12
    )


def test_inverse_fills_realise_coin_pnl_with_a_harmonic_entry() -> None:
    engine = Engine([_inverse(MARGIN)], EngineConfig(valuation_asset="BTC"))
    fills = [
        Fill(
            fill_id="1",
            account="a",
            symbol="BTC-PERPETUAL",
            side="buy",
            qty=1000,
            price=40_000,
            ts=1,
        ),
        Fill(
            fill_id="2",
            account="a",
            symbol="BTC-PERPETUAL",
            side="buy",
            qty=1000,
            price=50_000,
            ts=2,
        ),
        Fill(
            fill_id="3",
            account="a",
            symbol="BTC-PERPETUAL",
            side="sell",
            qty=2000,
            price=45_000,
            ts=3,
        ),
    ]
    engine.apply(
        [Transfer(transfer_id="t", account="a", asset="BTC", amount=1.0, ts=0), *fills], [], 3
    )
    # 2,000 x $10 long, entered at 10,000/40,000 + 10,000/50,000 = 0.45 BTC, closed
    # at 20,000/45,000 = 0.4444 BTC: PnL = $20,000 x (1/entry - 1/exit) = 0.45 - 0.4444.
    risk = engine.account_risk("a")
    assert risk.collateral["BTC"] == pytest.approx(1.0 + 0.45 - 20_000 / 45_000, rel=1e-12)
    assert risk.positions == ()


# --------------------------------------------------------------------------- delivery


def _option_engine() -> Engine:
    call = _option("C10K", 10_000.0, "call")
    put = _option("P10K", 10_000.0, "put")
    engine = Engine([call, put], EngineConfig(valuation_asset="BTC"))
    deposits = [
        Transfer(transfer_id=f"d-{a}", account=a, asset="BTC", amount=1.0, ts=0) for a in "bs"
    ]
    engine.apply(deposits, [], 0)
    return engine


def test_delivery_settles_a_call_as_deribits_example_1() -> None:
    # Buy a 10,000 call for 0.05 BTC; delivery price 12,500: the option settles at
    # 2,500 / 12,500 = 0.2 BTC, credited to the buyer and debited from the seller.
    engine = _option_engine()
    trades = [
        Fill(fill_id="1", account="b", symbol="C10K", side="buy", qty=1, price=0.05, ts=1),
        Fill(fill_id="2", account="s", symbol="C10K", side="sell", qty=1, price=0.05, ts=1),
    ]
    engine.apply(trades, [PriceTick(symbol="BTC-USD", mark_price=12_500.0, ts=EXPIRY)], EXPIRY)
    deliveries = [
        Delivery(delivery_id=f"x-{a}", account=a, symbol="C10K", settlement_price=12_500, ts=EXPIRY)
        for a in "bs"
    ]
    engine.apply(deliveries, [], EXPIRY)
    engine.apply(deliveries, [], EXPIRY)  # idempotent by delivery_id
    buyer, seller = engine.account_risk("b"), engine.account_risk("s")
    assert buyer.collateral["BTC"] == pytest.approx(1.0 - 0.05 + 0.2)  # profit 0.15 BTC
    assert seller.collateral["BTC"] == pytest.approx(1.0 + 0.05 - 0.2)
    assert buyer.positions == ()
    assert seller.positions == ()
    assert engine.verify() == []


def test_a_delivery_before_expiry_is_refused() -> None:
    engine = _option_engine()
    early = Delivery(
        delivery_id="x", account="b", symbol="C10K", settlement_price=12_500, ts=EXPIRY - 1
    )
    assert engine.rejection_reason(early) == "delivery_before_expiry"
    with pytest.raises(InputError, match="delivery_before_expiry"):
        engine.apply([early], [], EXPIRY)


def test_an_expired_option_is_worth_its_intrinsic_value_until_delivered() -> None:
    # Deribit's example 2: a 10,000 put with the underlying at 5,000 is worth
    # 5,000 / 5,000 = 1 BTC at expiry.
    engine = _option_engine()
    fill = Fill(fill_id="1", account="s", symbol="P10K", side="sell", qty=1, price=0.05, ts=1)
    ticks = [
        PriceTick(symbol="P10K", mark_iv=0.8, ts=EXPIRY + 1),
        PriceTick(symbol="BTC-USD", mark_price=5_000.0, ts=EXPIRY + 1),
    ]
    engine.apply([fill], ticks, EXPIRY + 1)
    (position,) = engine.account_risk("s").positions
    assert position.mark_price == pytest.approx(1.0)
    assert engine.account_risk("s").equity == pytest.approx(1.05 - 1.0)
    # MM = 0.075 + 1 BTC, far above the 0.05 BTC of equity left.
    assert engine.account_risk("s").state == "liquidation"


def test_verify_flags_an_option_mark_that_differs_from_a_fresh_pricing() -> None:
    engine = _option_engine()
    ticks = [
        PriceTick(symbol="BTC-USD", mark_price=10_000.0, ts=NOW),
        PriceTick(symbol="C10K", mark_iv=0.5, ts=NOW),
    ]
    engine.apply([], ticks, NOW)
    assert engine.verify() == []
    engine.book.mark[0] *= 1.01
    (problem,) = engine.verify()
    assert problem.startswith("option C10K: mark stored")


TIERED = TieredMargin(
    tiers=(
        Tier(floor=0, cap=10, mmr=0.005, imr=0.01),
        Tier(floor=10, cap=1e9, mmr=0.02, imr=0.04),
    )
)


@pytest.mark.parametrize("qty", [30_000.0, -30_000.0, 3_000.0])
def test_tiered_inverse_liquidation_price_plugs_back_in_its_bracket(qty: float) -> None:
    # Brackets keyed by the coin notional |qty x 10| / price (30,000 contracts at 40,000:
    # 7.5 BTC, first bracket; near a liquidation of a long it can cross 10 BTC).
    entry, mark, collateral = 40_000.0, 40_000.0, 0.4
    request = _request(
        [_inverse(TIERED)],
        {"BTC-PERPETUAL": mark},
        [{"symbol": "BTC-PERPETUAL", "qty": qty, "entry_price": entry}],
        {"BTC": collateral},
    )
    (position,) = evaluate(request)[0].positions
    price = position.liquidation_price
    assert price is not None
    usd = qty * 10.0
    coin = abs(usd) / price
    mmr, cum = (0.005, 0.0) if coin <= 10 else (0.02, 10 * (0.02 - 0.005))
    equity = collateral + usd * (1.0 / entry - 1.0 / price)
    assert equity == pytest.approx(coin * mmr - cum, rel=1e-9)


def test_option_standard_rates_are_configurable_as_bitcom_publishes_them() -> None:
    # bit.com "BCH Option Margin" (https://support.bit.com/hc/en-us/articles/4404914044441):
    # short call IM = max(0.25 - OTM/S, 0.15) + mark, MM = 0.125 + mark. K 50,000 on S
    # 45,000 at 0.02: IM = max(0.25 - 0.1111, 0.15) + 0.02 = 0.15 + 0.02 = 0.17;
    # MM = 0.125 + 0.02 = 0.145.
    instrument = msgspec.structs.replace(
        _option("OPT", 50_000.0, "call"),
        margin=msgspec.convert(
            {"model": "option_standard", "im_rate": 0.25, "im_floor": 0.15, "mm_rate": 0.125},
            OptionStandardMargin,
        ),
    )
    request = _request(
        [instrument],
        {"BTC-USD": 45_000.0, "OPT": 0.02},
        [{"symbol": "OPT", "qty": -1.0, "entry_price": 0.02}],
        {"BTC": 1.0},
    )
    (position,) = evaluate(request)[0].positions
    assert position.initial_margin == pytest.approx(0.17, rel=1e-9)
    assert position.maintenance_margin == pytest.approx(0.145, rel=1e-9)


def test_a_put_expiring_out_of_the_money_settles_at_zero_as_deribits_example_3() -> None:
    # Sell a 10,000 put for 0.05 BTC; delivery price 10,001: it expires worthless, the
    # seller keeps the 0.05 BTC.
    engine = _option_engine()
    fill = Fill(fill_id="1", account="s", symbol="P10K", side="sell", qty=1, price=0.05, ts=1)
    delivery = Delivery(
        delivery_id="d", account="s", symbol="P10K", settlement_price=10_001, ts=EXPIRY
    )
    engine.apply([fill, delivery], [], EXPIRY)
    seller = engine.account_risk("s")
    assert seller.collateral["BTC"] == pytest.approx(1.05)
    assert seller.positions == ()
