"""Hostile input never stops `liqmon run`, and a restart afterwards is clean.

Each case feeds the running process something that once killed it or corrupted its
judgement, restarts the process (it must reach /readyz again, with the poison still in
the topics), and then checks that a normal account fed afterwards gets its margin call
and liquidation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import msgspec
import pytest

from monitor.schema import Fill, MarginEvent, MarginSettings, PriceTick, Transfer
from streams import dlq_origin
from streams.dlq import DLQ_ORIGINAL_SIZE, DLQ_TRUNCATED
from tests.integration.liqmon_process import (
    LiqmonProcess,
    judges_a_normal_account,
    metric_value,
)
from tests.integration.monitor_harness import INSTRUMENTS, MonitorHarness, now_ms

pytestmark = pytest.mark.kafka

_encode = msgspec.json.Encoder().encode
U64_MAX = 2**64 - 1


@pytest.fixture
async def proc(harness: MonitorHarness) -> AsyncIterator[LiqmonProcess]:
    process = LiqmonProcess(harness)
    yield process
    await process.close()


def btc(price: float, ts: int | None = None) -> PriceTick:
    return PriceTick(symbol="BTCUSDT", mark_price=price, ts=now_ms() if ts is None else ts)


def eth(price: float, ts: int | None = None) -> PriceTick:
    return PriceTick(symbol="ETHUSDT", mark_price=price, ts=now_ms() if ts is None else ts)


def deposit_and_buy(
    account: str, asset: str, amount: float, qty: float, price: float, ts: int
) -> tuple[Transfer, Fill]:
    """A deposit of ``amount`` ``asset``, then a buy of ``qty`` BTCUSDT at ``price``."""
    return (
        Transfer(transfer_id=f"t-{account}", account=account, asset=asset, amount=amount, ts=ts),
        Fill(
            fill_id=f"f-{account}",
            account=account,
            symbol="BTCUSDT",
            side="buy",
            qty=qty,
            price=price,
            ts=ts,
        ),
    )


async def dead_letters(h: MonitorHarness, count: int) -> list[tuple[str, str, dict[str, bytes]]]:
    """Wait (deadline) for ``count`` DLQ records; (source topic, reason, headers) of each."""
    deadline = time.monotonic() + 30
    while True:
        records = await h.read_all(h.topics.dlq)
        if len(records) >= count:
            found = []
            for record in records:
                origin = dlq_origin(record.headers)
                assert origin is not None
                found.append((origin.topic, origin.reason, dict(record.headers)))
            return found
        assert time.monotonic() < deadline, f"{len(records)} of {count} dead letters"
        await asyncio.sleep(0.05)


async def events_of(h: MonitorHarness, account: str) -> list[MarginEvent]:
    return [e for e in await h.events() if e.account == account]


async def wait_types(
    h: MonitorHarness, proc: LiqmonProcess, account: str, types: list[str]
) -> list[MarginEvent]:
    deadline = time.monotonic() + 30
    while True:
        proc.assert_running()
        events = await events_of(h, account)
        if [e.type for e in events] == types:
            return events
        assert time.monotonic() < deadline, f"{account}: wanted {types}, got {events}"
        await asyncio.sleep(0.05)


async def open_long(
    h: MonitorHarness, proc: LiqmonProcess, account: str, symbol: str, qty: float, price: float
) -> None:
    """``account``: 100 USDT, 10x leverage, ``qty`` long (short if negative) at ``price``."""
    applied = 'liqmon_ledger_events_applied_total{type="fill"}'
    before = metric_value(await proc.metrics(), applied) or 0.0
    ts = now_ms()
    await h.ledger(
        Transfer(transfer_id=f"t-{account}", account=account, asset="USDT", amount=100, ts=ts),
        MarginSettings(
            settings_id=f"s-{account}", account=account, symbol=symbol, leverage=10, ts=ts
        ),
        Fill(
            fill_id=f"f-{account}",
            account=account,
            symbol=symbol,
            side="buy" if qty > 0 else "sell",
            qty=abs(qty),
            price=price,
            ts=ts,
        ),
    )
    await proc.wait_metric(applied, lambda v: v > before, f"{account}'s fill to apply")


async def test_a_delisted_instrument_in_restored_state_does_not_stop_a_restart(
    harness: MonitorHarness, proc: LiqmonProcess
) -> None:
    h = harness
    await h.prices(btc(100.0), eth(10.0))
    await proc.start()
    await open_long(h, proc, "d1", "ETHUSDT", 90, 10.0)
    await h.prices(eth(9.0))
    await wait_types(h, proc, "d1", ["margin_call"])
    await h.prices(eth(8.9))
    await wait_types(h, proc, "d1", ["margin_call", "liquidation"])
    await proc.stop()
    proc.write_instruments([i for i in INSTRUMENTS if i.symbol != "ETHUSDT"])
    await proc.start()
    # d1 is judged on what remains (its wallet), and says why it changed.
    events = await wait_types(h, proc, "d1", ["margin_call", "liquidation", "liquidation_cleared"])
    assert (events[-1].trigger, events[-1].trigger_ts) == ("restore", 0)
    skipped = 'liqmon_replay_records_rejected_total{reason="unknown_instrument"}'
    assert metric_value(await proc.metrics(), skipped) == 2.0  # d1's leverage and fill
    assert "ETHUSDT" in proc.log_text()
    await proc.restart()
    await judges_a_normal_account(h, proc, "n1", 100.0)
    assert [e.type for e in await events_of(h, "d1")][-1] == "liquidation_cleared"


async def test_timestamps_out_of_range_are_dead_lettered_and_never_crash_a_restart(
    harness: MonitorHarness, proc: LiqmonProcess
) -> None:
    h = harness
    await h.prices(btc(100.0))
    await proc.start()
    ts = now_ms()
    await h.raw(
        h.topics.prices, b"BTCUSDT", b'{"symbol":"BTCUSDT","mark_price":100.5,"ts":%d}' % U64_MAX
    )
    await h.raw(h.topics.prices, b"BTCUSDT", _encode(btc(100.5, ts * 1000)))  # microseconds
    await h.raw(h.topics.prices, b"BTCUSDT", _encode(btc(100.5, -1)))
    deposit = Transfer(transfer_id="late", account="z", asset="USDT", amount=1.0, ts=U64_MAX)
    await h.ledger(deposit, msgspec.structs.replace(deposit, transfer_id="day", ts=ts + 86_400_000))
    letters = await dead_letters(h, 5)
    assert sorted(reason for _, reason, _ in letters) == ["ts_out_of_range"] * 5
    await proc.restart()
    # The bad ticks are still the newest of BTCUSDT in the table: re-read, not re-sent.
    await proc.wait_metric("liqmon_dlq_repeats_skipped_total", lambda v: v == 3, "repeats")
    assert len(await h.read_all(h.topics.dlq)) == 5
    await judges_a_normal_account(h, proc, "n1", 100.0)


async def test_oversize_records_become_dead_letters_that_fit(
    harness: MonitorHarness, proc: LiqmonProcess
) -> None:
    h = harness
    await h.prices(btc(100.0))
    await proc.start()
    garbage = b"\x00" * 1_000_000
    fill = Fill(
        fill_id="f",
        account="x" * 1_000_000,
        symbol="BTCUSDT",
        side="buy",
        qty=1,
        price=1,
        ts=now_ms(),
    )
    await h.raw(h.topics.fills, b"big", garbage)
    await h.raw(h.topics.fills, b"big", _encode(fill))
    letters = await dead_letters(h, 2)
    assert sorted(reason for _, reason, _ in letters) == ["invalid", "undecodable"]
    for _, _, headers in letters:
        assert headers[DLQ_TRUNCATED] == b"value"
        assert int(headers[DLQ_ORIGINAL_SIZE]) >= 1_000_000
    await proc.restart()
    await judges_a_normal_account(h, proc, "n1", 100.0)


async def test_huge_finite_numbers_are_rejected_so_every_figure_stays_finite(
    harness: MonitorHarness, proc: LiqmonProcess
) -> None:
    h = harness
    await h.prices(btc(100.0))
    await proc.start()
    ts = now_ms()
    await h.ledger(
        *deposit_and_buy("h1", "USDT", 1000, 1e300, 1e300, ts),
        Transfer(transfer_id="t-h2", account="h1", asset="USDT", amount=1e300, ts=ts),
    )
    await h.prices(btc(1e300))
    letters = await dead_letters(h, 3)
    assert sorted(reason for _, reason, _ in letters) == [
        "amount_out_of_range",
        "price_out_of_range",
        "quantity_out_of_range",
    ]
    await proc.restart()
    await judges_a_normal_account(h, proc, "n1", 100.0)
    # Every event decodes against our own schema (a null equity would not).
    assert all(e.equity == e.equity for e in await h.events())


async def test_a_future_dated_tick_cannot_freeze_prices(
    harness: MonitorHarness, proc: LiqmonProcess
) -> None:
    h = harness
    await h.prices(btc(100.0))
    await proc.start()
    await h.prices(btc(100.2, now_ms() + 3_600_000))  # an hour ahead: rejected
    [(_, reason, _)] = await dead_letters(h, 1)
    assert reason == "ts_out_of_range"
    # Correctly stamped ticks are still used: a 90%-underwater account is liquidated.
    await judges_a_normal_account(h, proc, "n1", 100.0)
    await proc.restart()
    await judges_a_normal_account(h, proc, "n2", 89.0)


async def test_a_future_dated_ledger_event_cannot_make_a_redelivered_fill_apply_twice(
    harness: MonitorHarness, proc: LiqmonProcess
) -> None:
    h = harness
    await h.prices(btc(100.0))
    await proc.start()
    ts = now_ms()
    deposit = Transfer(transfer_id="t-u1", account="u1", asset="USDT", amount=100, ts=ts)
    future = Transfer(
        transfer_id="t-u1-future", account="u1", asset="USDT", amount=5, ts=ts + 10 * 86_400_000
    )
    await h.ledger(deposit, future, deposit)  # the deposit is redelivered after the future one
    duplicate = 'liqmon_ledger_events_ignored_total{reason="duplicate"}'
    await proc.wait_metric(duplicate, lambda v: v == 1, "the redelivery to be dropped")
    [(_, reason, _)] = await dead_letters(h, 1)
    assert reason == "ts_out_of_range"
    await proc.restart()
    assert metric_value(await proc.metrics(), duplicate) == 0.0  # replayed, counted before
    await judges_a_normal_account(h, proc, "n1", 100.0)


async def test_a_held_price_stays_held_after_a_restart(
    harness: MonitorHarness, proc: LiqmonProcess
) -> None:
    h = harness
    await h.prices(btc(100.0), eth(10.0))
    await proc.start()
    await open_long(h, proc, "e1", "ETHUSDT", -90, 10.0)  # short: ruined by a jump to 30
    await h.prices(eth(30.0))
    await proc.wait_metric("liqmon_held_prices", lambda v: v == 1, "the jump to be held")
    await proc.restart()
    # The held tick is the newest of ETHUSDT in the compacted table: held again.
    await proc.wait_metric("liqmon_held_prices", lambda v: v == 1, "the jump to be held again")
    await judges_a_normal_account(h, proc, "n1", 100.0)
    assert await events_of(h, "e1") == []
    await proc.restart(kill=True)
    await judges_a_normal_account(h, proc, "n2", 89.0)
    assert await events_of(h, "e1") == []


async def test_a_stopped_feed_shows_in_price_and_feed_age(
    harness: MonitorHarness, proc: LiqmonProcess
) -> None:
    h = harness
    await h.prices(btc(100.0, now_ms() - 20_000))
    await proc.start()
    feed = await proc.wait_metric("liqmon_price_feed_age_seconds", lambda v: v >= 20, "feed age")
    await proc.wait_metric("liqmon_price_feed_age_seconds", lambda v: v > feed, "feed age to grow")
    age = metric_value(await proc.metrics(), 'liqmon_price_age_seconds{symbol="BTCUSDT"}')
    assert age is not None
    assert age >= 20
    await proc.restart()
    await judges_a_normal_account(h, proc, "n1", 100.0)
    await proc.wait_metric("liqmon_price_feed_age_seconds", lambda v: v < 10, "a fresh feed")


async def test_losses_are_never_quiet_and_dead_letters_are_not_repeated_on_restart(
    harness: MonitorHarness, proc: LiqmonProcess
) -> None:
    h = harness
    await h.prices(btc(100.0))
    await h.raw(h.topics.state, b"account:zz", b"not a state record")
    await proc.start()
    exposition = await proc.metrics()
    assert metric_value(exposition, "liqmon_changelog_records_dropped_total") == 1.0
    # Every labelled counter exists at 0 before its first increment.
    for series in (
        'liqmon_dlq_records_total{reason="undecodable"}',
        'liqmon_dlq_records_total{reason="ts_out_of_range"}',
        'liqmon_events_published_total{type="bankruptcy"}',
        'liqmon_ledger_events_ignored_total{reason="duplicate"}',
        'liqmon_price_holds_total{reason="out_of_band"}',
    ):
        assert metric_value(exposition, series) == 0.0, series
    await h.raw(h.topics.prices, b"BTCUSDT", b"\xff garbage")
    await dead_letters(h, 1)
    await proc.restart(kill=True)
    await proc.wait_metric("liqmon_dlq_repeats_skipped_total", lambda v: v == 1, "no repeat")
    await judges_a_normal_account(h, proc, "n1", 100.0)
    assert len(await h.read_all(h.topics.dlq)) == 1


async def test_collateral_priced_by_the_instrument_moves_with_it_in_liquidation_prices(
    harness: MonitorHarness,
) -> None:
    h = harness
    collateral = '[{"asset": "BTC", "haircut": 0.0, "price_symbol": "BTCUSDT"}]'
    proc = LiqmonProcess(h, env={"LIQMON_ENGINE__COLLATERAL": collateral})
    try:
        await h.prices(btc(60_000.0))
        await proc.start()
        ts = now_ms()
        await h.ledger(*deposit_and_buy("w1", "BTC", 1.0, 2, 75_000, ts))
        await h.prices(btc(50_200.0))
        [call] = await wait_types(h, proc, "w1", ["margin_call"])
        # Worked by hand: equity(p) = 1 BTC x p + 2 x (p - 75,000) = 3p - 150,000 (the wallet
        # falls with the mark); MM(p) = 2p x 0.004. Liquidation: 3p - 150,000 = 0.008p.
        [position] = call.positions
        assert position.liquidation_price == pytest.approx(150_000 / 2.992, rel=1e-9)
        assert position.bankruptcy_price == pytest.approx(50_000.0, rel=1e-9)
        await proc.restart()
        await h.prices(btc(50_100.0))  # below 50,133.69: liquidated, as announced
        await wait_types(h, proc, "w1", ["margin_call", "liquidation"])
    finally:
        await proc.close()


async def test_positive_equity_under_a_huge_position_is_liquidation_not_bankruptcy(
    harness: MonitorHarness, proc: LiqmonProcess
) -> None:
    h = harness
    await h.prices(btc(60_000.0))
    await proc.start()
    ts = now_ms()
    await h.ledger(*deposit_and_buy("whale", "USDT", 1.2e10 + 1_000, 2e7, 60_000, ts))
    await h.prices(btc(59_700.0))
    await wait_types(h, proc, "whale", ["margin_call"])
    await h.prices(btc(59_400.0))  # equity: 1.2e10 + 1,000 - 2e7 x 600 = 1,000 USDT
    events = await wait_types(h, proc, "whale", ["margin_call", "liquidation"])
    assert events[-1].state == "liquidation"
    assert events[-1].equity == pytest.approx(1_000.0, abs=1e-3)
    await proc.restart()
    assert [e.type for e in await events_of(h, "whale")] == ["margin_call", "liquidation"]
    await judges_a_normal_account(h, proc, "n1", 59_400.0)  # takes the whale bankrupt too
    assert [e.type for e in await events_of(h, "whale")][:2] == ["margin_call", "liquidation"]


async def test_a_typo_in_the_instruments_file_is_one_line_naming_the_field(
    harness: MonitorHarness, proc: LiqmonProcess
) -> None:
    h = harness
    await h.prices(btc(100.0))
    proc.write_instruments(
        b'{"instruments": [{"symbol": "BTCUSDT", "kind": "linear", "quote": "USDT", '
        b'"base": "BTC", "margn": {"model": "tiered", "tiers": []}}]}'
    )
    with pytest.raises(AssertionError, match="exited with"):
        await proc.start(ready_within_s=30)
    last = proc.tail(1)
    assert last.startswith("liqmon: error:")
    assert "margn" in last
    assert len(proc.tail(3).splitlines()) <= 3
    proc.write_instruments(INSTRUMENTS)
    await proc.start()
    await judges_a_normal_account(h, proc, "n1", 100.0)
