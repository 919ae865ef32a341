"""`liqmon run` end to end on the real broker: scripted accounts, prices and the events out."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Callable

import pytest

from monitor.schema import Fill, MarginEvent, MarginSettings, PriceTick, Transfer
from streams.settings import KafkaSettings, TopicSettings
from tests.integration.monitor_harness import MonitorHarness, now_ms

pytestmark = pytest.mark.kafka


@pytest.fixture
async def harness(
    kafka_settings: KafkaSettings, topics: TopicSettings, unique_name: Callable[[], str]
) -> AsyncIterator[MonitorHarness]:
    async with MonitorHarness(kafka_settings, topics, unique_name()) as h:
        yield h


def deposit(account: str, amount: float, ts: int, n: int = 1) -> Transfer:
    return Transfer(
        transfer_id=f"t-{account}-{n}", account=account, asset="USDT", amount=amount, ts=ts
    )


def leverage(account: str, symbol: str, value: float, ts: int) -> MarginSettings:
    return MarginSettings(
        settings_id=f"s-{account}-{symbol}", account=account, symbol=symbol, leverage=value, ts=ts
    )


def buy(
    account: str, qty: float, price: float, ts: int, n: int = 1, symbol: str = "BTCUSDT"
) -> Fill:
    return Fill(
        fill_id=f"f-{account}-{n}",
        account=account,
        symbol=symbol,
        side="buy",
        qty=qty,
        price=price,
        ts=ts,
    )


def btc(price: float, ts: int) -> PriceTick:
    return PriceTick(symbol="BTCUSDT", mark_price=price, ts=ts)


def by_account(events: list[MarginEvent]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = collections.defaultdict(list)
    for event in events:
        grouped[event.account].append(event.type)
    return dict(grouped)


async def open_book(h: MonitorHarness, ts: int) -> None:
    """a1: 90 BTC long at 100, 10x, 1000 USDT. a2: 10 BTC long, well funded. a3: underfunded."""
    await h.ledger(
        deposit("a1", 1000, ts),
        leverage("a1", "BTCUSDT", 10, ts),
        buy("a1", 90, 100, ts),
        deposit("a2", 1000, ts),
        leverage("a2", "BTCUSDT", 10, ts),
        buy("a2", 10, 100, ts),
        deposit("a3", 100, ts),
        leverage("a3", "BTCUSDT", 5, ts),
        buy("a3", 10, 100, ts),
    )


async def test_scripted_scenario_emits_each_expected_event_once_in_order(
    harness: MonitorHarness,
) -> None:
    h = harness
    t0 = now_ms()
    await h.prices(btc(100.0, t0))
    await h.start_monitor()
    await open_book(h, t0)
    # a3 has 100 USDT of equity against 200 of initial margin: a margin call at once.
    await h.wait_events(lambda ev: by_account(ev).get("a3") == ["margin_call"], "a3 margin call")
    # A deposit brings it back above IM plus the hysteresis band: cleared.
    await h.ledger(deposit("a3", 500, t0 + 1, n=2))
    await h.wait_events(
        lambda ev: by_account(ev).get("a3") == ["margin_call", "margin_call_cleared"], "a3 cleared"
    )
    # 95: a1's equity 550 is below its IM (855): margin call.
    await h.prices(btc(95.0, t0 + 2))
    await h.wait_events(lambda ev: "a1" in by_account(ev), "a1 margin call")
    # 89: a1's equity 10 is below its MM (32.04): liquidation.
    await h.prices(btc(89.0, t0 + 3))
    events = await h.wait_events(
        lambda ev: by_account(ev).get("a1") == ["margin_call", "liquidation"], "a1 liquidation"
    )
    assert by_account(events) == {
        "a3": ["margin_call", "margin_call_cleared"],
        "a1": ["margin_call", "liquidation"],
    }
    assert len({e.event_id for e in events}) == len(events)
    liquidation = events[-1]
    assert liquidation.trigger == "price"
    assert liquidation.trigger_ts == t0 + 3
    assert liquidation.equity == pytest.approx(10.0)
    assert liquidation.maintenance_margin == pytest.approx(90 * 89.0 * 0.004)
    assert liquidation.reductions
    assert liquidation.reductions[0].symbol == "BTCUSDT"
    assert liquidation.positions[0].liquidation_price is not None
    margin_call = next(e for e in events if e.account == "a1")
    assert margin_call.trigger_ts == t0 + 2
    assert margin_call.initial_margin == pytest.approx(90 * 95.0 / 10)


async def test_events_carry_their_type_in_a_kafka_header(harness: MonitorHarness) -> None:
    h = harness
    t0 = now_ms()
    await h.prices(btc(100.0, t0))
    await h.start_monitor()
    await open_book(h, t0)
    await h.wait_events(lambda ev: len(ev) >= 1, "the first event")
    records = await h.read_all(h.topics.margin_events)
    assert [(r.key, dict(r.headers)["type"]) for r in records] == [(b"a3", b"margin_call")]
