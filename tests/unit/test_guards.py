"""Price guards hold stale and out-of-band ticks until confirmed."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.guards import Conflation, PriceGuard
from monitor.schema import PriceTick

pytestmark = pytest.mark.unit


def tick(symbol: str, price: float, ts: int) -> PriceTick:
    return PriceTick(symbol=symbol, mark_price=price, ts=ts)


@pytest.fixture
def guard() -> PriceGuard:
    g = PriceGuard(max_age_ms=5_000, band=0.2)
    g.screen([tick("BTC", 100.0, 1_000), tick("ETH", 10.0, 1_000)])
    return g


def test_first_price_of_an_instrument_is_accepted_even_if_old() -> None:
    g = PriceGuard(max_age_ms=5_000, band=0.2)
    decision = g.screen([tick("ETH", 10.0, 100_000), tick("BTC", 100.0, 1_000)])
    assert {t.symbol for t in decision.accepted} == {"ETH", "BTC"}


def test_price_within_band_is_accepted(guard: PriceGuard) -> None:
    decision = guard.screen([tick("BTC", 119.0, 2_000)])
    assert [t.mark_price for t in decision.accepted] == [119.0]
    assert decision.held == ()


def test_last_tick_per_instrument_wins_and_the_rest_are_counted_as_conflated(
    guard: PriceGuard,
) -> None:
    decision = guard.screen([tick("BTC", 101.0, 2_000), tick("BTC", 102.0, 2_001)])
    assert [t.mark_price for t in decision.accepted] == [102.0]
    assert decision.conflated == 1


def test_out_of_band_jump_is_held_until_a_later_tick_confirms_it(guard: PriceGuard) -> None:
    first = guard.screen([tick("BTC", 50.0, 2_000)])
    assert first.accepted == ()
    assert first.held == ((tick("BTC", 50.0, 2_000), "out_of_band"),)
    assert guard.held_count == 1
    second = guard.screen([tick("BTC", 51.0, 2_100)])
    assert [t.mark_price for t in second.accepted] == [51.0]
    assert guard.held_count == 0


def test_out_of_band_jump_confirmed_within_the_same_batch_is_accepted(guard: PriceGuard) -> None:
    decision = guard.screen([tick("BTC", 50.0, 2_000), tick("BTC", 50.5, 2_001)])
    assert [t.mark_price for t in decision.accepted] == [50.5]


def test_a_lone_spike_followed_by_a_normal_price_never_gets_accepted(guard: PriceGuard) -> None:
    guard.screen([tick("BTC", 10.0, 2_000)])
    decision = guard.screen([tick("BTC", 101.0, 2_100)])
    assert [t.mark_price for t in decision.accepted] == [101.0]
    assert guard.held_count == 0


def test_two_disagreeing_spikes_stay_held(guard: PriceGuard) -> None:
    guard.screen([tick("BTC", 10.0, 2_000)])
    decision = guard.screen([tick("BTC", 300.0, 2_100)])
    assert decision.accepted == ()
    assert decision.held[0][1] == "out_of_band"


def test_stale_tick_is_not_used(guard: PriceGuard) -> None:
    guard.screen([tick("ETH", 10.0, 20_000)])
    decision = guard.screen([tick("BTC", 101.0, 10_000)])
    assert decision.accepted == ()
    assert decision.held == ((tick("BTC", 101.0, 10_000), "stale"),)


def test_held_tick_that_ages_out_cannot_confirm_a_later_spike(guard: PriceGuard) -> None:
    guard.screen([tick("BTC", 50.0, 2_000)])
    guard.screen([tick("ETH", 10.0, 9_000)])
    assert guard.held_count == 0
    decision = guard.screen([tick("BTC", 50.5, 9_000)])
    assert decision.accepted == ()


def test_a_held_tick_that_ages_out_is_reported_as_expired(guard: PriceGuard) -> None:
    guard.screen([tick("BTC", 50.0, 2_000)])
    decision = guard.screen([tick("ETH", 10.0, 9_000)])
    assert decision.expired == (tick("BTC", 50.0, 2_000),)


def test_one_future_dated_tick_cannot_make_correct_ticks_stale(guard: PriceGuard) -> None:
    # Stamped in microseconds: a thousand times the wall clock.
    guard.screen([tick("ETH", 10.0, 1_000_000_000)], now_ms=2_000)
    assert guard.newest_ts == 2_000
    decision = guard.screen([tick("BTC", 101.0, 3_000)], now_ms=3_000)
    assert [t.mark_price for t in decision.accepted] == [101.0]


def test_restored_references_hold_an_out_of_band_head_of_table() -> None:
    g = PriceGuard(max_age_ms=5_000, band=0.2)
    g.restore([tick("BNB", 438.0, 1_000)])
    decision = g.screen([tick("BNB", 900.0, 1_500)])
    assert decision.accepted == ()
    assert decision.held == ((tick("BNB", 900.0, 1_500), "out_of_band"),)


def test_restored_references_never_replace_a_newer_accepted_price(guard: PriceGuard) -> None:
    guard.restore([tick("BTC", 10.0, 500)])
    assert guard.screen([tick("BTC", 101.0, 2_000)]).accepted == (tick("BTC", 101.0, 2_000),)


def test_take_changed_returns_each_newly_accepted_reference_once(guard: PriceGuard) -> None:
    assert {t.symbol for t in guard.take_changed()} == {"BTC", "ETH"}
    guard.screen([tick("BTC", 101.0, 2_000), tick("BTC", 102.0, 2_001)])
    assert guard.take_changed() == [tick("BTC", 102.0, 2_001)]
    assert guard.take_changed() == []


def test_a_steady_fall_in_in_band_steps_within_one_batch_is_accepted(guard: PriceGuard) -> None:
    steps = [tick("BTC", p, 2_000 + k) for k, p in enumerate((92.0, 85.0, 78.0, 72.0))]
    decision = guard.screen(steps)
    assert [t.mark_price for t in decision.accepted] == [72.0]
    assert decision.held == ()


def test_a_spike_inside_a_batch_does_not_carry_the_reference(guard: PriceGuard) -> None:
    decision = guard.screen([tick("BTC", 300.0, 2_000), tick("BTC", 70.0, 2_001)])
    assert decision.accepted == ()
    assert decision.held[0][1] == "out_of_band"


_ticks = st.lists(
    st.builds(
        tick,
        st.sampled_from(["BTC", "ETH", "SOL", "XRP"]),
        st.floats(50.0, 150.0),
        st.integers(0, 20_000),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(_ticks, st.lists(st.integers(0, 40), max_size=4), _ticks)
def test_chunks_conflated_apart_and_merged_screen_as_the_whole_batch(
    batch: list[PriceTick], cuts: list[int], before: list[PriceTick]
) -> None:
    """The intake conflates each polled chunk and merges them (``Conflation.merged``);
    the guard then decides as if it had conflated the cycle's ticks itself."""
    bounds = [0, *sorted(min(c, len(batch)) for c in cuts), len(batch)]
    runs = [Conflation.of(batch[a:b]) if a < b else Conflation({}, 0) for a, b in pairwise(bounds)]
    merged = Conflation.merged(runs)
    whole = Conflation.of(batch)
    assert list(merged.last.items()) == list(whole.last.items())  # order too
    assert merged.newest == whole.newest
    given_ = PriceGuard(max_age_ms=5_000, band=0.2)
    own = PriceGuard(max_age_ms=5_000, band=0.2)
    for guard in (given_, own):
        guard.screen(before, 10_000)
    assert given_.screen(batch, 12_000, merged) == own.screen(batch, 12_000)
    assert given_.references() == own.references()
    assert given_.held_count == own.held_count
