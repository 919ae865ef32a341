"""Dynamic margin: volatility from accepted marks, anti-procyclical rate scales, the
engine's rescaling, checked against a plain-loop reference written here."""

from __future__ import annotations

import itertools
import math

import msgspec
import pytest

from monitor.dynamic import DynamicMargin, DynamicMarginParams, DynamicSettings
from monitor.engine import Engine, EngineConfig
from monitor.errors import ConfigError
from monitor.schema import (
    Fill,
    Instrument,
    MarginParameters,
    MarginSettings,
    OptionStandardMargin,
    PortfolioMarginParams,
    PriceTick,
    Tier,
    TieredMargin,
    Transfer,
    VolatilityState,
)

pytestmark = pytest.mark.unit

MINUTE = 60_000
HOUR = 3_600_000
BTC = Instrument(
    symbol="BTCUSDT",
    kind="linear",
    quote="USDT",
    base="BTC",
    margin=TieredMargin(tiers=(Tier(floor=0, cap=1e12, mmr=0.01, imr=0.02),)),
)
RULE = DynamicMarginParams(
    reference_vol=0.5, floor=0.8, cap=2.5, stressed_weight=0.25, max_change_per_hour=0.6
)


def settings(rule: DynamicMarginParams = RULE, warmup: int = 10) -> DynamicSettings:
    return DynamicSettings(ewma_warmup=warmup, margin={"BTCUSDT": rule})


def path(moves: list[float], start: float = 100.0) -> list[PriceTick]:
    """One tick per minute, the mark moving by ``moves`` (log returns), at mid-bar."""
    ticks, price = [], start
    ticks.append(PriceTick(symbol="BTCUSDT", mark_price=price, ts=MINUTE // 2))
    for k, r in enumerate(moves, start=1):
        price *= math.exp(r)
        ticks.append(PriceTick(symbol="BTCUSDT", mark_price=price, ts=k * MINUTE + MINUTE // 2))
    return ticks


def calm(n: int, size: float = 0.0001) -> list[float]:
    return [size if k % 2 else -size for k in range(n)]


def reference_scales(
    ticks: list[PriceTick], rule: DynamicMarginParams, warmup: int, lam: float = 0.94
) -> list[tuple[int, float]]:
    """(bar-close time, effective scale) at every change: a plain loop, one tick per bar.
    A bar's return is known when the bar closes, at the start of the next one; the last
    bar is still open."""
    bars_per_year = 365 * 24 * 60
    returns: list[float] = []
    variance = math.nan
    scale, stressed, last_t = 1.0, 0.0, -1
    out = []
    for prev, tick in itertools.pairwise(ticks[:-1]):
        r = math.log(tick.mark_price / prev.mark_price)
        returns.append(r)
        if len(returns) == warmup:
            mean = sum(returns) / warmup
            variance = sum((x - mean) ** 2 for x in returns) / (warmup - 1)
        elif len(returns) > warmup:
            variance = lam * variance + (1 - lam) * r * r
        if math.isnan(variance):
            continue
        t = (tick.ts // MINUTE + 1) * MINUTE
        ratio = math.sqrt(variance * bars_per_year) / rule.reference_vol
        raw = min(max(ratio, rule.floor), rule.cap)
        stressed = max(stressed, raw)
        target = max(rule.floor, (1 - rule.stressed_weight) * raw + rule.stressed_weight * stressed)
        step = 0.0 if last_t < 0 else rule.max_change_per_hour * (t - last_t) / HOUR
        last_t = t
        new = target if abs(target - scale) <= step else scale + math.copysign(step, target - scale)
        if abs(new - scale) > 1e-12 * scale:  # changes below rounding are not published
            scale = new
            out.append((t, scale))
    return out


def run(dynamic: DynamicMargin, ticks: list[PriceTick], batch: int = 1) -> list[MarginParameters]:
    changes = []
    for k in range(0, len(ticks), batch):
        found, _ = dynamic.observe(ticks[k : k + batch], now_ms=0)
        changes.extend(found)
    return changes


def test_a_calm_period_lowers_the_scale_to_the_floor_and_never_below() -> None:
    dynamic = DynamicMargin([BTC], settings())
    changes = run(dynamic, path(calm(600)))
    assert changes, "a calm market lowers the scale"
    assert min(c.scale for c in changes) == pytest.approx(RULE.floor)
    assert all(c.scale >= RULE.floor for c in changes)
    assert "floor" in changes[-1].limited_by
    assert dynamic.scales() == {"BTCUSDT": pytest.approx(RULE.floor)}


def test_a_volatility_spike_raises_the_scale_within_cap_and_max_change_per_hour() -> None:
    dynamic = DynamicMargin([BTC], settings())
    changes = run(dynamic, path(calm(60) + calm(300, 0.004)))
    rises = [c for c in changes if c.scale > c.previous_scale]
    assert rises
    assert max(c.scale for c in changes) <= RULE.cap
    assert changes[-1].scale == pytest.approx(RULE.cap)
    for before, after in itertools.pairwise(changes):
        hours = (after.ts - before.ts) / HOUR
        assert abs(after.scale - before.scale) <= RULE.max_change_per_hour * hours + 1e-12
    assert any("max_change" in c.limited_by for c in rises)


def test_scales_match_a_plain_loop_reference() -> None:
    ticks = path(calm(80) + calm(200, 0.003) + calm(400, 0.0002))
    dynamic = DynamicMargin([BTC], settings())
    got = [(c.ts, c.scale) for c in run(dynamic, ticks)]
    expected = reference_scales(ticks, RULE, warmup=10)
    assert len(got) == len(expected)
    for (t, s), (t_ref, s_ref) in zip(got, expected, strict=True):
        assert t == t_ref
        assert s == pytest.approx(s_ref, rel=1e-9)


def test_after_a_stress_the_stressed_weight_keeps_the_scale_above_the_calm_level() -> None:
    dynamic = DynamicMargin([BTC], settings())
    changes = run(dynamic, path(calm(60) + calm(300, 0.004) + calm(1500)))
    last = changes[-1]
    assert last.stressed_scale == pytest.approx(RULE.cap)
    expected = (1 - RULE.stressed_weight) * RULE.floor + RULE.stressed_weight * RULE.cap
    assert last.scale == pytest.approx(expected)
    assert "stressed_weight" in last.limited_by


def test_the_outcome_does_not_depend_on_batching() -> None:
    ticks = path(calm(50) + calm(200, 0.003))
    one = [(c.ts, c.scale) for c in run(DynamicMargin([BTC], settings()), ticks, batch=1)]
    many = [(c.ts, c.scale) for c in run(DynamicMargin([BTC], settings()), ticks, batch=37)]
    assert one == many


def test_state_restored_from_records_continues_as_if_never_stopped() -> None:
    ticks = path(calm(50) + calm(200, 0.003))
    whole = run(DynamicMargin([BTC], settings()), ticks)
    first = DynamicMargin([BTC], settings())
    before = run(first, ticks[:120])
    second = DynamicMargin([BTC], settings())
    second.restore(first.states(changed_only=False))
    after = run(second, ticks[120:])
    assert [(c.ts, c.scale) for c in before + after] == [(c.ts, c.scale) for c in whole]


def test_an_increase_waits_for_its_lead_time() -> None:
    rule = DynamicMarginParams(
        reference_vol=0.5, floor=1.0, cap=2.0, max_change_per_hour=60.0, lead_time_s=600
    )
    dynamic = DynamicMargin([BTC], settings(rule))
    changes = run(dynamic, path(calm(30) + calm(100, 0.004)))
    first = next(c for c in changes if c.scale > 1.0)
    assert first.ts - first.announced_ts == 600_000


def test_a_scale_multiplies_the_maintenance_margin_and_can_liquidate() -> None:
    engine = Engine([BTC])
    engine.apply(
        [
            Transfer(transfer_id="t", account="a", asset="USDT", amount=15.0, ts=1),
            Fill(
                fill_id="f", account="a", symbol="BTCUSDT", side="buy", qty=10.0, price=100.0, ts=1
            ),
        ],
        [PriceTick(symbol="BTCUSDT", mark_price=100.0, ts=2)],
        now_ms=3,
    )
    assert engine.account_risk("a").maintenance_margin == pytest.approx(10.0)  # 1000 x 1 %
    trigger = PriceTick(symbol="BTCUSDT", mark_price=100.0, ts=5)
    events = engine.rescale({"BTCUSDT": 2.0}, {"BTCUSDT": trigger}, now_ms=6)
    risk = engine.account_risk("a")
    assert risk.maintenance_margin == pytest.approx(20.0)
    assert risk.initial_margin == pytest.approx(40.0)
    assert [e.type for e in events] == ["liquidation"]
    assert events[0].trigger == "price"
    assert events[0].trigger_ts == 5
    assert engine.verify() == []
    engine.rescale({"BTCUSDT": 1.0}, {"BTCUSDT": trigger}, now_ms=7)
    assert engine.account_risk("a").maintenance_margin == pytest.approx(10.0)


def test_a_key_matching_no_future_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="ETHUSDT"):
        DynamicMargin([BTC], DynamicSettings(margin={"ETHUSDT": RULE}))


def test_a_range_scale_widens_the_risk_matrix_of_portfolio_accounts() -> None:
    params = PortfolioMarginParams(price_range=0.1, futures_contingency=0.0, extreme_moves=())
    # An option on the same underlying makes BTCUSDT an option group too (the portfolio
    # engine prices groups of books that list options).
    call = Instrument(
        symbol="BTC-C",
        kind="option",
        quote="USDT",
        base="BTC",
        underlying="BTCUSDT",
        strike=100.0,
        expiry=10**13,
        option_type="call",
        margin=OptionStandardMargin(),
    )
    engine = Engine([BTC, call], EngineConfig(portfolio_margin={"BTCUSDT": params}))
    engine.apply(
        [
            Transfer(transfer_id="t", account="p", asset="USDT", amount=150.0, ts=1),
            MarginSettings(settings_id="s", account="p", mode="portfolio", ts=1),
            Fill(
                fill_id="f", account="p", symbol="BTCUSDT", side="buy", qty=10.0, price=100.0, ts=1
            ),
        ],
        [PriceTick(symbol="BTCUSDT", mark_price=100.0, ts=2)],
        now_ms=3,
    )
    # Worst loss of a 10 BTC long on a +/-10 % grid: 10 x 100 x 0.1.
    assert engine.account_risk("p").maintenance_margin == pytest.approx(100.0)
    trigger = PriceTick(symbol="BTCUSDT", mark_price=100.0, ts=5)
    events = engine.rescale({}, {"BTCUSDT": trigger}, now_ms=6, ranges={"BTCUSDT": 2.0})
    assert engine.account_risk("p").maintenance_margin == pytest.approx(200.0)
    assert [e.type for e in events] == ["liquidation"]
    assert events[0].trigger_ts == 5
    assert engine.verify() == []


def test_states_survive_the_json_changelog_even_while_warming_up() -> None:
    dynamic = DynamicMargin([BTC], settings())
    run(dynamic, path(calm(3)))  # still warming up: no variance yet
    records = dynamic.states(changed_only=False)
    decoded = msgspec.json.decode(msgspec.json.encode(records), type=list[VolatilityState])
    again = DynamicMargin([BTC], settings())
    again.restore(decoded)
    assert msgspec.json.encode(again.states(changed_only=False)) == msgspec.json.encode(records)
