"""Solvency reports through `liqmon run` on the real broker: what the report says would go
bankrupt under a scenario does go bankrupt when that scenario then happens in the stream."""

from __future__ import annotations

import asyncio
import time

import msgspec
import pytest

from monitor.config import SolvencySettings
from monitor.schema import Fill, SolvencyReport, StressScenario
from tests.integration.monitor_harness import (
    MonitorHarness,
    btc,
    buy,
    by_account,
    deposit,
    now_ms,
)

pytestmark = pytest.mark.kafka

CRASH = StressScenario(name="BTC -20%", moves={"BTC": -0.2})


def sell(account: str, qty: float, price: float, ts: int) -> Fill:
    return Fill(
        fill_id=f"f-{account}-sell",
        account=account,
        symbol="BTCUSDT",
        side="sell",
        qty=qty,
        price=price,
        ts=ts,
    )


async def reports(h: MonitorHarness) -> list[SolvencyReport]:
    decode = msgspec.json.Decoder(SolvencyReport).decode
    return [decode(r.value) for r in await h.read_all(h.topics.solvency) if r.value]


async def whole_book_report(h: MonitorHarness, accounts: int) -> SolvencyReport:
    """The newest report covering ``accounts`` accounts (re-read with a deadline)."""
    deadline = time.monotonic() + 60.0
    while True:
        found = [r for r in await reports(h) if r.accounts == accounts]
        if found:
            return found[-1]
        if h.monitor is None or time.monotonic() > deadline:
            raise AssertionError(f"no solvency report of {accounts} accounts within 60 s")
        await asyncio.sleep(0.1)


async def test_every_account_the_report_calls_bankrupt_goes_bankrupt_in_the_crash(
    harness: MonitorHarness,
) -> None:
    h = harness
    t0 = now_ms()
    await h.prices(btc(100.0, t0))
    await h.start_monitor(
        solvency=SolvencySettings(interval_s=0.2, scenarios=[CRASH]),
        insurance_fund={"USDT": 300.0},
    )
    # At 80: a1 (90 long on 1,000) owes 800, b1 (30 long on 500) owes 100; a2 keeps 800;
    # the short s1 gains.
    await h.ledger(
        deposit("a1", 1000, t0),
        buy("a1", 90, 100, t0),
        deposit("b1", 500, t0),
        buy("b1", 30, 100, t0),
        deposit("a2", 1000, t0),
        buy("a2", 10, 100, t0),
        deposit("s1", 5000, t0),
        sell("s1", 130, 100, t0),
    )
    found = await whole_book_report(h, accounts=4)
    report = found
    (crash,) = report.scenarios
    assert crash.scenario == CRASH.name
    assert set(crash.bankrupt) == {"a1", "b1"}
    assert crash.bad_debt == pytest.approx(900.0)
    assert crash.coverage == pytest.approx(300.0 / 900.0)
    assert report.cover2 == pytest.approx(900.0)
    assert report.cover2_groups == ("a1", "b1")
    (queue,) = report.adl_candidates
    assert (queue.symbol, queue.side) == ("BTCUSDT", "short")
    assert queue.shortfall == pytest.approx(600.0)
    assert [c.account for c in queue.candidates] == ["s1"]
    monitor = h.monitor
    assert monitor is not None
    metrics = monitor.metrics.exposition().decode()
    assert f'liqmon_stress_bad_debt{{scenario="{CRASH.name}"}} 900.0' in metrics

    # The scenario happens, in steps inside the price guard's band.
    for k, price in enumerate((95.0, 90.0, 85.0, 80.0), start=1):
        await h.prices(btc(price, t0 + k))
    events = await h.wait_events(
        lambda ev: all("bankruptcy" in by_account(ev).get(a, []) for a in crash.bankrupt),
        "bankruptcy of every account the report named",
    )
    assert "bankruptcy" not in by_account(events).get("a2", [])
    bankruptcy = next(e for e in events if e.account == "a1" and e.type == "bankruptcy")
    assert bankruptcy.adl_quantile is not None
    assert 0.0 < bankruptcy.adl_quantile <= 1.0
