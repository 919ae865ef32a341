"""Options through `liqmon run` on the real broker: option ticks with mark_iv, an underlying
crash that liquidates a short-put writer, and an option that expires and is delivered."""

from __future__ import annotations

import msgspec
import pytest
from vollib.black import black as oracle_value

from monitor.schema import Delivery, Fill, Instrument, PriceTick
from tests.integration.monitor_harness import (
    INSTRUMENTS,
    MonitorHarness,
    btc,
    by_account,
    deposit,
    now_ms,
)

pytestmark = pytest.mark.kafka

DAY = 86_400_000


def _put(symbol: str, strike: float, expiry: int) -> Instrument:
    return msgspec.convert(
        {
            "symbol": symbol,
            "kind": "option",
            "quote": "USDT",
            "base": "BTC",
            "underlying": "BTCUSDT",
            "strike": strike,
            "expiry": expiry,
            "option_type": "put",
            "margin": {"model": "option_standard"},
        },
        Instrument,
    )


def _sell(account: str, symbol: str, qty: float, price: float, ts: int) -> Fill:
    return Fill(
        fill_id=f"f-{account}-{symbol}",
        account=account,
        symbol=symbol,
        side="sell",
        qty=qty,
        price=price,
        ts=ts,
    )


def _open_positions(h: MonitorHarness, account: str) -> int:
    """How many positions ``account`` holds in the running monitor (0 if unknown yet)."""
    engine = h.monitor.engine  # type: ignore[union-attr]
    if account not in engine.book.account_index:
        return 0
    return len(engine.account_risk(account).positions)


async def test_a_crash_liquidates_a_short_put_and_an_expired_put_is_delivered(
    harness: MonitorHarness,
) -> None:
    h = harness
    t0 = now_ms()
    month, soon = t0 + 30 * DAY, t0 + 50
    instruments = [*INSTRUMENTS, _put("P95", 95.0, month), _put("P95-SOON", 95.0, soon)]
    await h.prices(
        btc(100.0, t0),
        PriceTick(symbol="P95", mark_iv=0.6, ts=t0),
        PriceTick(symbol="P95-SOON", mark_iv=0.6, ts=t0),
    )
    await h.start_monitor(instruments)
    premium = float(oracle_value("p", 100.0, 95.0, 30 / 365, 0.0, 0.6))
    # Deribit's short put IM per contract on a linear option: max(0.15 - 5/100, 0.10) x 100
    # + mark = 10 + mark. The writer funds 1.3 x the IM of 2 puts.
    funding = 1.3 * 2 * (10.0 + premium)
    await h.ledger(
        deposit("writer", funding, t0),
        _sell("writer", "P95", 2, premium, t0),
        deposit("holder", 1_000.0, t0),
        _sell("holder", "P95-SOON", 1, 0.01, t0),
    )
    await h.until(
        lambda: _open_positions(h, "writer") == 1 and _open_positions(h, "holder") == 1,
        "both accounts' opening fills",
    )
    risk = h.monitor.engine.account_risk("writer")  # type: ignore[union-attr]
    assert risk.state == "healthy"
    assert risk.positions[0].mark_price == pytest.approx(premium, rel=1e-9)
    assert risk.positions[0].initial_margin == pytest.approx(2 * (10.0 + premium), rel=1e-9)
    # The underlying falls in steps inside the price band: the put goes deep in the money.
    # Each step is awaited: conflated into one batch, in-band steps would leave the last
    # tick out of band against the last accepted one, and the guard would hold it.
    for k, price in enumerate((92.0, 85.0, 78.0, 72.0), start=1):
        await h.prices(btc(price, t0 + 100 + k))
        await h.until(
            lambda p=price: h.monitor.engine.mark_price("BTCUSDT") == p,  # type: ignore[union-attr]
            f"BTCUSDT at {price}",
        )
    events = await h.wait_events(
        lambda ev: "liquidation" in by_account(ev).get("writer", []), "the writer's liquidation"
    )
    assert by_account(events)["writer"][:2] == ["margin_call", "liquidation"]
    liquidation = next(e for e in events if e.account == "writer" and e.type == "liquidation")
    assert liquidation.trigger == "price"
    (position,) = liquidation.positions
    assert position.symbol == "P95"
    assert position.mark_iv is not None
    assert position.greeks is not None
    assert position.greeks.delta > 0.0  # short a put: long delta
    assert position.liquidation_price is None
    assert liquidation.reductions[0].symbol == "P95"
    assert liquidation.greeks["BTCUSDT"] == position.greeks
    # P95-SOON expired at t0 + 50: it is worth its intrinsic value, 95 - 72 = 23, until
    # delivered at the settlement price 72, which takes 23 from the holder's wallet.
    holder = h.monitor.engine.account_risk("holder")  # type: ignore[union-attr]
    assert holder.positions[0].mark_price == pytest.approx(23.0)
    await h.ledger(
        Delivery(
            delivery_id="d-holder",
            account="holder",
            symbol="P95-SOON",
            settlement_price=72.0,
            ts=t0 + 200,
        )
    )
    await h.until(
        lambda: h.monitor.engine.account_risk("holder").positions == (),  # type: ignore[union-attr]
        "the delivery",
    )
    holder = h.monitor.engine.account_risk("holder")  # type: ignore[union-attr]
    assert holder.collateral["USDT"] == pytest.approx(1_000.0 + 0.01 - 23.0)
    assert holder.equity == pytest.approx(1_000.0 + 0.01 - 23.0)
