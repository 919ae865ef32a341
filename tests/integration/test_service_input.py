"""Bad input goes to the DLQ with its reason and never stops the monitor; guards hold prices."""

from __future__ import annotations

import asyncio
import shutil

import msgspec
import pytest

from monitor.schema import Fill, PriceTick
from streams import dlq_origin
from tests.integration.monitor_harness import (
    MonitorHarness,
    btc,
    by_account,
    now_ms,
    open_book,
)

pytestmark = pytest.mark.kafka

_encode = msgspec.json.Encoder().encode


async def test_each_kind_of_bad_record_lands_in_the_dlq_with_its_reason(
    harness: MonitorHarness,
) -> None:
    h = harness
    t0 = now_ms()
    await h.prices(btc(100.0, t0))
    await h.start_monitor()
    fills, prices = h.topics.fills, h.topics.prices
    bad_fill = Fill(fill_id="x", account="bad", symbol="BTCUSDT", side="buy", qty=1, price=1, ts=t0)
    bad = [
        (fills, b"not json at all", "undecodable"),
        (fills, b'{"type": "fill", "fill_id": "f"}', "invalid"),
        (fills, _encode(msgspec.structs.replace(bad_fill, symbol="NOPE")), "unknown_instrument"),
        (fills, _encode(msgspec.structs.replace(bad_fill, qty=0.0)), "non_positive_quantity"),
        (fills, _encode(msgspec.structs.replace(bad_fill, qty=-2.0)), "non_positive_quantity"),
        (fills, None, "missing_value"),
        (
            prices,
            _encode(PriceTick(symbol="BTCUSDT", mark_price=-5.0, ts=t0)),
            "non_positive_price",
        ),
        (prices, _encode(PriceTick(symbol="BTCUSDT", mark_price=0.0, ts=t0)), "non_positive_price"),
        (prices, _encode(PriceTick(symbol="NOPE", mark_price=1.0, ts=t0)), "unknown_instrument"),
        (prices, b'{"symbol": "BTCUSDT", "mark_price": 1e999, "ts": 1}', "invalid"),
        (prices, b"\xff\xfe", "undecodable"),
    ]
    for topic, value, _ in bad:
        await h.raw(topic, b"bad", value)
    # Good input after the bad: processed as usual.
    await open_book(h, t0)
    await h.wait_events(lambda ev: by_account(ev).get("a3") == ["margin_call"], "a3 margin call")

    async def dead_letters() -> list[tuple[str, str, bytes | None]]:
        records = await h.read_all(h.topics.dlq)
        found = []
        for record in records:
            origin = dlq_origin(record.headers)
            assert origin is not None
            found.append((origin.topic, origin.reason, record.value))
        return found

    deadline = asyncio.get_running_loop().time() + 30
    while len(found := await dead_letters()) < len(bad):
        assert asyncio.get_running_loop().time() < deadline, found
        await asyncio.sleep(0.05)
    assert sorted(found, key=repr) == sorted(
        [(topic, reason, value) for topic, value, reason in bad], key=repr
    )
    monitor = h.monitor
    assert monitor is not None
    counted = {
        s.labels["reason"]: s.value
        for metric in monitor.metrics.dlq_records.collect()
        for s in metric.samples
        if s.name.endswith("_total") and s.value
    }
    assert counted == {
        "undecodable": 2,
        "invalid": 2,
        "unknown_instrument": 2,
        "non_positive_quantity": 2,
        "missing_value": 1,
        "non_positive_price": 2,
    }


async def test_dlq_records_name_their_source_partition_and_offset(harness: MonitorHarness) -> None:
    h = harness
    t0 = now_ms()
    await h.prices(btc(100.0, t0))
    await h.start_monitor()
    await h.raw(h.topics.fills, b"acct-9", b"{broken")
    records: list = []
    deadline = asyncio.get_running_loop().time() + 30
    while not (records := await h.read_all(h.topics.dlq)):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    (record,) = records
    origin = dlq_origin(record.headers)
    assert origin is not None
    originals = [r for r in await h.read_all(h.topics.fills) if r.value == b"{broken"]
    assert (origin.topic, origin.partition, origin.offset) == (
        originals[0].topic,
        originals[0].partition,
        originals[0].offset,
    )
    assert record.key == b"acct-9"


async def test_an_out_of_band_price_liquidates_nobody_until_confirmed(
    harness: MonitorHarness,
) -> None:
    h = harness
    t0 = now_ms()
    await h.prices(btc(100.0, t0))
    await h.start_monitor(price_band=0.05)
    await open_book(h, t0)
    await h.wait_events(lambda ev: by_account(ev) == {"a3": ["margin_call"]}, "a3 margin call")
    monitor = h.monitor
    assert monitor is not None
    # 89 is 11 % below the last accepted 100: held.
    await h.prices(btc(89.0, t0 + 1))
    await h.until(lambda: monitor.metrics.held_prices._value.get() == 1, "the price to be held")
    assert by_account(await h.events()) == {"a3": ["margin_call"]}
    # A second tick agreeing with it confirms the move: now a1 is liquidated.
    await h.prices(btc(89.2, t0 + 2))
    await h.wait_events(lambda ev: by_account(ev).get("a1") == ["liquidation"], "a1 liquidation")


async def test_a_stale_price_liquidates_nobody(harness: MonitorHarness) -> None:
    h = harness
    t0 = now_ms() - 120_000  # the story happens in the last two minutes, never in the future
    await h.prices(btc(100.0, t0), PriceTick(symbol="ETHUSDT", mark_price=10.0, ts=t0))
    await h.start_monitor(max_price_age_s=5.0)
    await open_book(h, t0)
    await h.wait_events(lambda ev: by_account(ev) == {"a3": ["margin_call"]}, "a3 margin call")
    monitor = h.monitor
    assert monitor is not None
    # ETH ticks at t0 + 60 s, so a BTC tick stamped t0 + 10 s is 50 s old: not used.
    await h.prices(PriceTick(symbol="ETHUSDT", mark_price=10.0, ts=t0 + 60_000))
    await h.prices(btc(89.0, t0 + 10_000))
    await h.until(
        lambda: any(
            s.labels.get("reason") == "stale" and s.value == 1
            for metric in monitor.metrics.prices_held.collect()
            for s in metric.samples
        ),
        "the stale price to be counted",
    )
    assert by_account(await h.events()) == {"a3": ["margin_call"]}
    # A fresh tick at the same level is used.
    await h.prices(btc(89.0, t0 + 60_001))
    await h.wait_events(lambda ev: by_account(ev).get("a1") == ["liquidation"], "a1 liquidation")


async def test_input_produced_by_kcat_is_processed_the_same_way(harness: MonitorHarness) -> None:
    kcat = shutil.which("kcat")
    assert kcat, "kcat not found: `make test` installs Debian's kcat"
    h = harness
    t0 = now_ms()
    await h.prices(btc(100.0, t0))
    await h.start_monitor()
    # Hand-written JSON, as another team's producer would send it: other field order,
    # integers for amounts, spaces.
    lines = (
        f'k1|{{"account": "k1", "type": "transfer", "amount": 100, "asset": "USDT", '
        f'"transfer_id": "kt-1", "ts": {t0}}}\n'
        f'k1|{{"ts": {t0}, "type": "margin_settings", "account": "k1", "symbol": "BTCUSDT", '
        f'"leverage": 4, "settings_id": "ks-1"}}\n'
        f'k1|{{"side": "buy", "qty": 5, "price": 100, "symbol": "BTCUSDT", "account": "k1", '
        f'"fill_id": "kf-1", "type": "fill", "ts": {t0}}}\n'
    ).encode()
    tool = await asyncio.create_subprocess_exec(
        kcat,
        "-P",
        "-b",
        h.kafka.bootstrap_servers,
        "-t",
        h.topics.fills,
        "-K",
        "|",
        stdin=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(tool.communicate(lines), 30)
    assert tool.returncode == 0, err.decode()
    events = await h.wait_events(lambda ev: by_account(ev) == {"k1": ["margin_call"]}, "k1 call")
    assert events[0].initial_margin == pytest.approx(125.0)
    # 80.2 is within the default 20 % band of 100.
    tick = f'BTCUSDT|{{"ts": {t0 + 1}, "mark_price": 80.2, "symbol": "BTCUSDT"}}\n'.encode()
    tool = await asyncio.create_subprocess_exec(
        kcat,
        "-P",
        "-b",
        h.kafka.bootstrap_servers,
        "-t",
        h.topics.prices,
        "-K",
        "|",
        stdin=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(tool.communicate(tick), 30)
    assert tool.returncode == 0, err.decode()
    await h.wait_events(
        lambda ev: by_account(ev) == {"k1": ["margin_call", "liquidation"]}, "k1 liquidation"
    )
