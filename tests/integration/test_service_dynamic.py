"""Dynamic margin through the real broker: a volatility spike raises margin within its
limits, publishes the parameter changes and moves accounts; a calm market keeps the floor;
the EWMA state survives a restart."""

from __future__ import annotations

import itertools
import math

import msgspec
import pytest

from monitor.dynamic import DynamicMarginParams, DynamicSettings
from monitor.service import Monitor
from tests.integration.monitor_harness import MonitorHarness, btc, by_account, deposit, now_ms
from tests.integration.monitor_harness import buy as buy_btc

pytestmark = pytest.mark.kafka

SECOND = 1000
RULE = DynamicMarginParams(
    reference_vol=1.0, floor=1.0, cap=3.0, stressed_weight=0.25, max_change_per_hour=180.0
)
# One-second bars so a test spans a few minutes of event time; 365 x 86,400 bars a year.
DYNAMIC = DynamicSettings(bar_s=1.0, ewma_warmup=5, margin={"BTCUSDT": RULE})


def moves(calm: int, spike: int) -> list[float]:
    """Per-bar log returns: a calm market (annualised vol ~0.56), then a spike (~17)."""
    return [(1e-4 if k % 2 else -1e-4) for k in range(calm)] + [
        (3e-3 if k % 2 else -3e-3) for k in range(spike)
    ]


async def feed(h: MonitorHarness, monitor: Monitor, start_ts: int, returns: list[float]) -> int:
    """One tick per one-second bar, each waited for (a cycle conflates ticks per symbol,
    so a batch of several bars would close only its last); returns the next tick time."""
    price, ts = 100.0, start_ts
    k = monitor.dynamic.index["BTCUSDT"]
    for r in [0.0, *returns]:
        price *= math.exp(r)
        await h.prices(btc(price, ts))
        bar = ts // SECOND
        await h.until(lambda b=bar: int(monitor.dynamic.ewma.bar[k]) == b, f"bar {bar} observed")
        ts += SECOND
    return ts


async def test_a_volatility_spike_raises_margin_within_limits_and_publishes_why(
    harness: MonitorHarness,
) -> None:
    h = harness
    t0 = (now_ms() // SECOND) * SECOND - 400 * SECOND  # event time in the recent past
    await h.prices(btc(100.0, t0 - SECOND))
    monitor = await h.start_monitor(dynamic=DYNAMIC)
    # IM 10 against equity 25 at scale 1; a scale of 2.8 or more puts it in margin call.
    await h.ledger(deposit("thin", 25, t0), buy_btc("thin", 10, 100, t0))
    await h.wait_events(lambda ev: True, "the ledger to be applied", timeout_s=5)
    await h.until(lambda: monitor.engine.account_count == 1, "the account booked")
    next_ts = await feed(h, monitor, t0, moves(calm=30, spike=0))
    assert monitor.dynamic.scales() == {"BTCUSDT": 1.0}, "a calm market keeps the floor"
    assert await h.parameters() == []
    await feed(h, monitor, next_ts, moves(calm=0, spike=80))
    changes = await h.wait_until_parameters(
        lambda found: bool(found) and found[-1].scale == pytest.approx(RULE.cap)
    )
    assert all(RULE.floor <= c.scale <= RULE.cap + 1e-12 for c in changes)
    for before, after in itertools.pairwise(changes):
        assert after.previous_scale == before.scale
        hours = (after.ts - before.ts) / 3_600_000
        assert after.scale - before.scale <= RULE.max_change_per_hour * hours + 1e-9
    assert "max_change" in changes[0].limited_by
    # At the cap IM is 30 against equity of at most 28: thin ends in margin call (on the
    # way there it may enter and clear as the mark swings).
    events = await h.wait_events(
        lambda ev: by_account(ev).get("thin", [""])[-1] == "margin_call", "thin's margin call"
    )
    calls = [e for e in events if e.account == "thin" and e.type == "margin_call"]
    assert all(e.initial_margin > 2.0 * 10.0 for e in calls)  # configured IM is 10
    assert all(e.trigger == "price" for e in calls)
    exposition = monitor.metrics.exposition().decode()
    assert 'liqmon_volatility{underlying="BTCUSDT"}' in exposition
    assert 'liqmon_margin_parameter_changes_total{underlying="BTCUSDT"}' in exposition


async def test_the_volatility_state_survives_a_restart(harness: MonitorHarness) -> None:
    h = harness
    t0 = (now_ms() // SECOND) * SECOND - 400 * SECOND
    await h.prices(btc(100.0, t0 - SECOND))
    monitor = await h.start_monitor(dynamic=DYNAMIC)
    next_ts = await feed(h, monitor, t0, moves(calm=10, spike=40))
    before = monitor.dynamic.states(changed_only=False)
    volatility = monitor.dynamic.volatility()["BTCUSDT"]
    scale = monitor.dynamic.scales()["BTCUSDT"]
    assert volatility > 0
    assert scale > 1.0
    await h.stop_monitor()
    monitor = await h.start_monitor(dynamic=DYNAMIC)
    # Compared encoded: a state still warming up holds NaN, which equals nothing.
    assert msgspec.json.encode(monitor.dynamic.states(changed_only=False)) == (
        msgspec.json.encode(before)
    )
    assert monitor.dynamic.scales()["BTCUSDT"] == scale
    assert monitor.engine.rate_scale.max() == scale
    # And it goes on from there: the next bar's return moves the same estimate.
    await feed(h, monitor, next_ts, [])
    assert monitor.dynamic.ewma.returns.max() >= before[0].returns
