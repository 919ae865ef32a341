"""Applied ledger ids are remembered for a window of event time, then forgotten."""

from __future__ import annotations

import random

import pytest

from monitor.book._seen import SeenIds
from monitor.engine import Engine, EngineConfig
from monitor.errors import ConfigError
from monitor.schema import Instrument, Tier, TieredMargin, Transfer

pytestmark = pytest.mark.unit

BTC = Instrument(
    symbol="BTCUSDT",
    kind="linear",
    quote="USDT",
    base="BTC",
    margin=TieredMargin(tiers=(Tier(floor=0, cap=1e12, mmr=0.004, imr=0.01),)),
)


def test_an_id_is_remembered_within_the_window() -> None:
    seen = SeenIds(window_ms=1_000)
    seen.add(("fill", "f1"), 100)
    seen.add(("fill", "f2"), 1_100)
    assert ("fill", "f1") in seen
    assert len(seen) == 2


def test_an_id_is_forgotten_once_newer_events_pass_the_window() -> None:
    seen = SeenIds(window_ms=1_000)
    seen.add(("fill", "f1"), 100)
    seen.add(("fill", "f2"), 1_101)
    assert ("fill", "f1") not in seen
    assert ("fill", "f2") in seen


def test_without_a_window_nothing_is_forgotten() -> None:
    seen = SeenIds()
    seen.add(("fill", "f1"), 0)
    seen.add(("fill", "f2"), 10**12)
    assert ("fill", "f1") in seen


def test_a_late_event_is_remembered_for_a_whole_window_after_it_was_applied() -> None:
    seen = SeenIds(window_ms=1_000)
    seen.add(("fill", "new"), 5_000)
    seen.add(("fill", "late"), 100)  # far behind the clock, yet applied now
    seen.add(("fill", "next"), 5_900)
    assert ("fill", "late") in seen


def test_memory_stays_bounded_when_every_id_is_inside_the_window() -> None:
    seen = SeenIds(window_ms=10**12, max_ids=100)
    for n in range(1_000):
        seen.add(("fill", str(n)), n)
    assert len(seen) == 100
    assert ("fill", "999") in seen
    assert ("fill", "899") not in seen


def test_a_re_applied_id_is_not_evicted_by_its_older_arrival() -> None:
    seen = SeenIds(window_ms=1_000)
    seen.add(("fill", "f1"), 0)
    seen.add(("fill", "f2"), 2_000)  # evicts f1
    seen.add(("fill", "f1"), 2_500)  # applied again: remembered anew
    seen.add(("fill", "f3"), 2_600)
    assert ("fill", "f1") in seen


def deposit(transfer_id: str, ts: int) -> Transfer:
    return Transfer(transfer_id=transfer_id, account="a", asset="USDT", amount=10.0, ts=ts)


def test_engine_drops_a_duplicate_inside_the_window_and_applies_one_after_it() -> None:
    engine = Engine([BTC], EngineConfig(idempotency_window_s=60.0))
    engine.apply([deposit("t1", 0), deposit("t1", 30_000)], [], now_ms=0)
    assert engine.ignored == {"duplicate": 1}
    assert engine.account_risk("a").equity == pytest.approx(10.0)
    engine.apply([deposit("t2", 120_000), deposit("t1", 120_001)], [], now_ms=0)
    assert engine.account_risk("a").equity == pytest.approx(30.0)


def test_a_non_positive_window_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="idempotency_window_s"):
        EngineConfig(idempotency_window_s=0.0)


@pytest.mark.parametrize(
    ("window_ms", "max_ids"), [(None, None), (500, None), (None, 40), (700, 60)]
)
def test_a_restore_keeps_the_newest_ids_inside_the_window_and_the_cap(
    window_ms: int | None, max_ids: int | None
) -> None:
    """What a snapshot restore remembers, against the rule stated plainly: of the entries
    stamped at or after clock - window, the newest max_ids (oldest forgotten first)."""
    rng = random.Random(13)
    entries = [("fill", f"f{k}", rng.randrange(0, 1_000), rng.randrange(5)) for k in range(150)]
    clock = 1_000
    seen = SeenIds(window_ms=window_ms, max_ids=max_ids)
    seen.restore(list(entries), clock)

    by_age = sorted(entries, key=lambda entry: entry[2])  # stable: ties keep input order
    horizon = clock - window_ms if window_ms is not None else -1
    inside = [entry for entry in by_age if entry[2] >= horizon]
    kept = inside[max(0, len(inside) - max_ids) :] if max_ids is not None else inside
    assert len(seen) == len(kept)
    assert sorted(seen.owned_by({0, 1, 2, 3, 4})) == sorted(kept)
    assert seen.clock_ms == clock
