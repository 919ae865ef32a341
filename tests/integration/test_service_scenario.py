"""`liqmon run` end to end on the real broker: scripted accounts, prices and the events out."""

from __future__ import annotations

import pytest

from tests.integration.monitor_harness import (
    MonitorHarness,
    btc,
    by_account,
    deposit,
    now_ms,
    open_book,
)

pytestmark = pytest.mark.kafka


async def test_scripted_scenario_emits_each_expected_event_once_in_order(
    harness: MonitorHarness,
) -> None:
    h = harness
    t0 = now_ms()
    await h.prices(btc(100.0, t0))
    await h.start_monitor()
    await open_book(h, t0)
    # a3 has 100 USDT of equity against 125 of initial margin: a margin call at once.
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
    liquidation = next(e for e in events if e.type == "liquidation")
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
