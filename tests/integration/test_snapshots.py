"""Snapshots: a restart loads the newest one and replays only the ledger after it.

Retention then may delete older ledger records; without a snapshot covering them the
start stops with one line naming the partition. An account too large for one chunk spans
several.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from monitor.changelog import read_changelog
from monitor.schema import Transfer
from streams import TopicPartition
from streams.settings import client_kwargs
from tests.integration.liqmon_process import LiqmonProcess, judges_a_normal_account, metric_value
from tests.integration.monitor_harness import MonitorHarness, btc, now_ms

pytestmark = pytest.mark.kafka


@pytest.fixture
async def procs(harness: MonitorHarness) -> AsyncIterator[list[LiqmonProcess]]:
    made: list[LiqmonProcess] = []
    yield made
    for process in made:
        await process.close()


async def delete_ledger_before(h: MonitorHarness, offsets: dict[TopicPartition, int]) -> None:
    admin = AIOKafkaAdminClient(**client_kwargs(h.kafka))
    await admin.start()
    try:
        await admin.delete_records({tp: RecordsToDelete(offset) for tp, offset in offsets.items()})
    finally:
        await admin.close()


async def ledger_ends(h: MonitorHarness) -> dict[TopicPartition, int]:
    records = await h.read_all(h.topics.fills)
    ends: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        ends[tp] = max(ends.get(tp, 0), record.offset + 1)
    return ends


async def test_a_restart_after_retention_loads_snapshots_and_replays_only_the_rest(
    harness: MonitorHarness, procs: list[LiqmonProcess]
) -> None:
    h = harness
    await h.prices(btc(100.0, now_ms()))
    proc = LiqmonProcess(h, snapshot_interval_s=0.5)
    procs.append(proc)
    await proc.start()
    await judges_a_normal_account(h, proc, "n1", 100.0)  # n1 ends up liquidated at 89
    ends = await ledger_ends(h)
    # Every partition with ledger records gets a snapshot covering all of them.
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        changelog = await read_changelog(h.kafka, h.topics.state)
        covered = {
            tp: snapshot[0].next_offset
            for tp in ends
            if (snapshot := changelog.snapshot(tp)) is not None
        }
        if all(covered.get(tp, -1) >= end for tp, end in ends.items()):
            break
        assert asyncio.get_running_loop().time() < deadline, (covered, ends)
        await asyncio.sleep(0.1)
    await proc.stop()
    stopped = await read_changelog(h.kafka, h.topics.state)  # what the restart loads
    fills = [TopicPartition(h.topics.fills, p) for p in range(h.topics.fills_partitions)]
    without = sum(stopped.snapshot(tp) is None for tp in fills)
    await delete_ledger_before(h, ends)  # retention took every ledger record so far
    await proc.start()
    assert "snapshots loaded" in proc.log_text()
    metrics = await proc.metrics()
    assert metric_value(metrics, "liqmon_snapshots_written_total") is not None
    # Counted from the snapshots the changelog holds (fewer once it writes more).
    missing = metric_value(metrics, "liqmon_snapshot_partitions_missing")
    assert missing is not None
    assert missing <= without < len(fills), (missing, without)
    # n1's position came back from the snapshot: a further fall makes it bankrupt, once.
    await h.prices(btc(80.0, now_ms()))
    deadline = asyncio.get_running_loop().time() + 30
    while [e.type for e in await h.events() if e.account == "n1"] != [
        "margin_call",
        "liquidation",
        "bankruptcy",
    ]:
        proc.assert_running()
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    await judges_a_normal_account(h, proc, "n2", 80.0)


async def test_deleted_ledger_records_no_snapshot_covers_stop_the_start_with_one_line(
    harness: MonitorHarness, procs: list[LiqmonProcess]
) -> None:
    h = harness
    await h.prices(btc(100.0, now_ms()))
    proc = LiqmonProcess(h, snapshot_interval_s=0)
    procs.append(proc)
    await proc.start()
    await judges_a_normal_account(h, proc, "n1", 100.0)
    ends = await ledger_ends(h)
    await proc.stop()
    await delete_ledger_before(h, ends)
    with pytest.raises(AssertionError, match="exited with 1"):
        await proc.start(ready_within_s=30)
    last = proc.tail(1)
    [tp] = ends
    assert last.startswith("liqmon: error: records 0 to ")
    assert f"{tp.topic}[{tp.partition}] were deleted (retention)" in last
    assert "no snapshot" in last


async def test_a_market_makers_snapshot_spans_chunks_and_a_restart_still_knows_its_ids(
    harness: MonitorHarness, procs: list[LiqmonProcess]
) -> None:
    """25,000 ledger ids of one account in the idempotency window are more than one chunk
    (800 KiB) holds: its snapshot spans two, and after retention took the ledger a restart
    still ignores those ids sent again."""
    h = harness
    await h.prices(btc(100.0, now_ms()))
    proc = LiqmonProcess(h, snapshot_interval_s=0.5)
    procs.append(proc)
    await proc.start()
    ts = now_ms()
    deposits = [
        Transfer(transfer_id=f"mm-{k}", account="mm", asset="USDT", amount=1.0, ts=ts)
        for k in range(25_000)
    ]
    await h.ledger(*deposits)
    applied = 'liqmon_ledger_events_applied_total{type="transfer"}'
    await proc.wait_metric(applied, lambda v: v >= 25_000, "the deposits to apply", 60)
    [(tp, end)] = (await ledger_ends(h)).items()
    deadline = asyncio.get_running_loop().time() + 60
    while (snapshot := (await read_changelog(h.kafka, h.topics.state)).snapshot(tp)) is None or (
        snapshot[0].next_offset < end
    ):
        assert asyncio.get_running_loop().time() < deadline, "no snapshot covers the deposits"
        await asyncio.sleep(0.2)
    assert [chunk.continues for chunk in snapshot] == [False, True]
    assert [chunk.accounts for chunk in snapshot] == [["mm"], ["mm"]]
    assert "snapshot not written" not in proc.log_text()
    await proc.stop()
    await delete_ledger_before(h, {tp: end})
    await proc.start()
    assert "snapshots loaded" in proc.log_text()
    await h.ledger(*deposits[-100:])
    ignored = 'liqmon_ledger_events_ignored_total{reason="duplicate"}'
    await proc.wait_metric(ignored, lambda v: v == 100, "the deposits sent again to be ignored")


async def test_deposits_sent_while_snapshots_are_copied_wait_for_the_copy_and_all_land(
    harness: MonitorHarness, procs: list[LiqmonProcess]
) -> None:
    """While a snapshot's copy is taken the ledger waits (docs/operations.md, Snapshots):
    with a snapshot every 0.2 s and deposits streaming in, no copy finds the book moved
    (each would be dropped and logged), and the last snapshot holds every deposit."""
    h = harness
    await h.prices(btc(100.0, now_ms()))
    proc = LiqmonProcess(h, snapshot_interval_s=0.2)
    procs.append(proc)
    await proc.start()
    applied = 'liqmon_ledger_events_applied_total{type="transfer"}'
    accounts = [f"d{k:02d}" for k in range(40)]
    bursts = 20
    for burst in range(1, bursts + 1):
        deposits = (
            Transfer(transfer_id=f"d{burst}-{a}", account=a, asset="USDT", amount=burst, ts=1)
            for a in accounts
        )
        await h.ledger(*deposits)
        await proc.wait_metric(applied, lambda v, n=burst: v >= 40 * n, f"burst {burst}")
    ends = await ledger_ends(h)
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        changelog = await read_changelog(h.kafka, h.topics.state)
        snapshots = {tp: changelog.snapshot(tp) for tp in ends}
        if all(s is not None and s[0].next_offset >= ends[tp] for tp, s in snapshots.items()):
            break
        assert asyncio.get_running_loop().time() < deadline, "no snapshots cover the deposits"
        await asyncio.sleep(0.1)
    balances: dict[str, float] = {}
    for snapshot in snapshots.values():
        assert snapshot is not None
        for chunk in snapshot:
            wallets = np.frombuffer(chunk.balances, "<f8").reshape(len(chunk.accounts), -1)
            usdt = chunk.assets.index("USDT")
            balances.update(zip(chunk.accounts, wallets[:, usdt].tolist(), strict=True))
    assert balances == dict.fromkeys(accounts, bursts * (bursts + 1) / 2)
    written = metric_value(await proc.metrics(), "liqmon_snapshots_written_total")
    assert written is not None
    assert written >= 2 * len(ends)
    assert "snapshot not written" not in proc.log_text()
