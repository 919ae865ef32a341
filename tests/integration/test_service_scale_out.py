"""Two monitors in one consumer group split the accounts; each event is published once."""

from __future__ import annotations

import asyncio

import pytest

from monitor.service import Monitor
from tests.integration.monitor_harness import (
    INSTRUMENTS,
    MonitorHarness,
    btc,
    buy,
    by_account,
    deposit,
    leverage,
    now_ms,
)

pytestmark = pytest.mark.kafka


async def test_two_instances_share_the_ledger_and_publish_each_event_once(
    harness: MonitorHarness,
) -> None:
    h = harness
    t0 = now_ms()
    await h.prices(btc(100.0, t0))
    first = await h.start_monitor()
    second = Monitor(h.settings(), INSTRUMENTS)
    second_task = asyncio.create_task(second.run())
    try:
        # Wait until the group has settled with both members holding partitions.
        await h.until(
            lambda: (
                second.readiness()[0]
                and first.readiness()[0]
                and len(first.owned_partitions) + len(second.owned_partitions)
                == h.topics.fills_partitions
                and bool(first.owned_partitions)
                and bool(second.owned_partitions)
            ),
            "both instances to own partitions",
            timeout_s=60,
        )
        accounts = [f"acct-{i}" for i in range(12)]
        for account in accounts:
            # 10 long at 100, 10x, 150 USDT: IM 100, healthy.
            await h.ledger(
                deposit(account, 150, t0),
                leverage(account, "BTCUSDT", 10, t0),
                buy(account, 10, 100, t0),
            )
        # At 90 equity is 50 against an IM of 90: a margin call for every account.
        await h.prices(btc(90.0, t0 + 1))
        expected = {account: ["margin_call"] for account in accounts}
        await h.wait_events(lambda ev: by_account(ev) == expected, "one call per account")
        owners = {
            name: [a for a in accounts if m.owns(a)]
            for name, m in (("first", first), ("second", second))
        }
        assert owners["first"]
        assert owners["second"]
        assert sorted(owners["first"] + owners["second"]) == sorted(accounts)
    finally:
        second.stop()
        async with asyncio.timeout(30):
            await second_task


async def test_an_instance_that_loses_partitions_drops_their_accounts(
    harness: MonitorHarness,
) -> None:
    h = harness
    t0 = now_ms()
    await h.prices(btc(100.0, t0))
    first = await h.start_monitor()
    accounts = [f"acct-{i}" for i in range(12)]
    for account in accounts:
        await h.ledger(deposit(account, 150, t0), buy(account, 1, 100, t0))
    await h.until(lambda: first.engine.account_count == len(accounts), "every account booked")
    second = Monitor(h.settings(), INSTRUMENTS)
    second_task = asyncio.create_task(second.run())
    try:
        await h.until(
            lambda: (
                second.readiness()[0]
                and first.readiness()[0]
                and bool(first.owned_partitions)
                and bool(second.owned_partitions)
            ),
            "both instances to own partitions",
            timeout_s=60,
        )
        kept = [a for a in accounts if first.owns(a)]
        moved = [a for a in accounts if second.owns(a)]
        assert sorted(kept + moved) == sorted(accounts)
        assert first.engine.account_count == len(kept)
        assert second.engine.account_count == len(moved)
    finally:
        second.stop()
        async with asyncio.timeout(30):
            await second_task
