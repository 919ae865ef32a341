"""Properties of the margin models that must hold for every valid spec and position."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from monitor.models import ModelTable
from monitor.schema import Instrument, RateCurve, SizeScaledMargin, Tier, TieredMargin

NAN = math.nan


@st.composite
def bracket_lists(draw: st.DrawFn) -> tuple[Tier, ...]:
    """Contiguous brackets from 0 with non-decreasing maintenance rates, cum derived."""
    count = draw(st.integers(1, 9))
    widths = draw(st.lists(st.floats(1.0, 1e7), min_size=count, max_size=count))
    mmrs = sorted(draw(st.lists(st.floats(1e-4, 0.5), min_size=count, max_size=count)))
    spreads = draw(st.lists(st.floats(1.0, 5.0), min_size=count, max_size=count))
    floors = [0.0, *np.cumsum(widths[:-1]).tolist()]
    caps = [*floors[1:], floors[-1] + widths[-1]]
    return tuple(
        Tier(floor=floor, cap=cap, mmr=mmr, imr=min(1.0, mmr * spread))
        for floor, cap, mmr, spread in zip(floors, caps, mmrs, spreads, strict=True)
    )


@st.composite
def size_scaled_specs(draw: st.DrawFn) -> SizeScaledMargin:
    mm_base = draw(st.floats(1e-4, 0.3))
    mm_slope = draw(st.floats(0.0, 1e-4))
    im_base = draw(st.floats(mm_base, 1.0))
    im_slope = draw(st.floats(mm_slope, 2e-4))
    return SizeScaledMargin(
        im=RateCurve(base=im_base, slope=im_slope), mm=RateCurve(base=mm_base, slope=mm_slope)
    )


def instrument(spec: TieredMargin | SizeScaledMargin, symbol: str, size: float) -> Instrument:
    return Instrument(
        symbol=symbol, kind="linear", quote="USDT", base="X", contract_size=size, margin=spec
    )


@st.composite
def tables(draw: st.DrawFn) -> ModelTable:
    """One to four instruments, tiered or size-scaled, with assorted contract sizes."""
    count = draw(st.integers(1, 4))
    instruments = []
    for k in range(count):
        spec: TieredMargin | SizeScaledMargin
        if draw(st.booleans()):
            spec = TieredMargin(tiers=draw(bracket_lists()))
        else:
            spec = draw(size_scaled_specs())
        size = draw(st.sampled_from([1.0, 0.1, 0.001, 10.0, 100.0]))
        instruments.append(instrument(spec, f"I{k}", size))
    return ModelTable.from_instruments(instruments)


@st.composite
def positions(draw: st.DrawFn, table: ModelTable, count: int = 20) -> tuple[NDArray[np.intp], ...]:
    n = len(table)
    return (
        np.array(draw(st.lists(st.integers(0, n - 1), min_size=count, max_size=count)), np.intp),
        np.array(draw(st.lists(st.floats(-1e4, 1e4), min_size=count, max_size=count))),
        np.array(draw(st.lists(st.floats(1e-2, 1e5), min_size=count, max_size=count))),
        np.array(
            draw(
                st.lists(
                    st.one_of(st.just(NAN), st.floats(1.0, 200.0)), min_size=count, max_size=count
                )
            )
        ),
    )


def tiers_of(table: ModelTable, row: int) -> tuple[list[float], list[float], list[float]]:
    used = int(table.layout.n_tiers[row])
    layout = table.layout
    return (
        layout.floors[row, :used].tolist(),
        layout.caps[row, :used].tolist(),
        layout.mmr[row, :used].tolist(),
    )


# --------------------------------------------------------------------------- requirements


@settings(deadline=None)
@given(st.data())
def test_maintenance_never_exceeds_initial_margin(data: st.DataObject) -> None:
    table = data.draw(tables())
    instrument_ix, qty, mark, leverage = data.draw(positions(table))
    initial, maintenance = table.requirements(instrument_ix, qty, mark, leverage)
    assert (maintenance <= initial).all()
    notional = table.notional(instrument_ix, qty, mark)
    assert (maintenance >= -1e-12 * notional).all()


@settings(deadline=None)
@given(bracket_lists())
def test_maintenance_is_continuous_across_every_bracket_floor(tiers: tuple[Tier, ...]) -> None:
    table = ModelTable.from_instruments([instrument(TieredMargin(tiers=tiers), "T", 1.0)])
    floors = np.array([t.floor for t in tiers[1:]])
    assume(floors.size > 0)
    below, above = floors, np.nextafter(floors, np.inf)
    ix = np.zeros(floors.size, dtype=np.intp)
    assert (table.bracket(ix, above) == table.bracket(ix, below) + 1).all()
    no_leverage = np.full(floors.size, NAN)
    _, at_floor = table.requirements_from_notional(ix, below, below, no_leverage)
    _, past_floor = table.requirements_from_notional(ix, above, above, no_leverage)
    np.testing.assert_allclose(past_floor, at_floor, rtol=1e-9, atol=1e-9)


@settings(deadline=None)
@given(bracket_lists(), st.lists(st.floats(0.0, 1e8), min_size=1, max_size=30))
def test_tiered_maintenance_is_each_slice_of_notional_at_its_brackets_rate(
    tiers: tuple[Tier, ...], notionals: list[float]
) -> None:
    """With cum derived, N * mmr - cum equals charging every slice of the notional
    at the rate of the bracket it falls in (Bybit's "any excess beyond a particular
    tier is subject to ... the MMR of the new tier")."""
    table = ModelTable.from_instruments([instrument(TieredMargin(tiers=tiers), "T", 1.0)])
    notional = np.array(notionals)
    ix = np.zeros(notional.size, dtype=np.intp)
    _, maintenance = table.requirements_from_notional(ix, notional, notional, notional * NAN)
    floors, caps, mmrs = tiers_of(table, 0)
    caps[-1] = math.inf  # beyond the last cap the last rate goes on
    for got, value in zip(maintenance, notionals, strict=True):
        sliced = sum(
            mmr * max(0.0, min(value, cap) - floor)
            for floor, cap, mmr in zip(floors, caps, mmrs, strict=True)
        )
        assert got == np.float64(sliced) or math.isclose(got, sliced, rel_tol=1e-9, abs_tol=1e-6)


@settings(deadline=None)
@given(st.data())
def test_bracket_lookup_agrees_with_comparing_every_floor(data: st.DataObject) -> None:
    table = data.draw(tables())
    row = data.draw(st.integers(0, len(table) - 1))
    floors, _, _ = tiers_of(table, row)
    edges = [np.nextafter(f, d) for f in floors[1:] for d in (-np.inf, np.inf)]
    extra = data.draw(st.lists(st.floats(0.0, 1e9), max_size=20))
    notional = np.array([0.0, *floors, *edges, *extra])
    got = table.bracket(np.full(notional.size, row, dtype=np.intp), notional)
    expected = [sum(1 for f in floors[1:] if x > f) for x in notional]
    assert got.tolist() == expected


# --------------------------------------------------------------------------- prices


@st.composite
def margin_units(draw: st.DrawFn) -> tuple[ModelTable, tuple[NDArray[np.float64], ...]]:
    """A table and, per position, (ix, qty, mark, equity, other maintenance)."""
    table = draw(tables())
    count = 12
    ix, qty, mark, _ = draw(positions(table, count))
    qty = np.where(np.abs(qty) < 1e-3, 1.0, qty)
    equity = np.array(draw(st.lists(st.floats(-1e6, 1e7), min_size=count, max_size=count)))
    other = np.array(draw(st.lists(st.floats(0.0, 1e6), min_size=count, max_size=count)))
    return table, (ix, qty, mark, equity, other)


def residual_and_scale(
    table: ModelTable, units: tuple[NDArray[np.float64], ...], price: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """equity(P) - MM(P) at the solved prices, and the size of the terms that made it."""
    ix, qty, mark, equity, other = units
    _, maintenance = table.requirements(ix.astype(np.intp), qty, price, price * NAN)
    size = qty * table.contract_size[ix.astype(np.intp)]
    equity_at = equity + size * (price - mark)
    scale = np.abs(equity) + np.abs(size) * (mark + price) + other + np.abs(maintenance)
    return equity_at - (other + maintenance), scale


@settings(deadline=None, max_examples=300)
@given(margin_units())
def test_liquidation_price_solves_equity_equals_maintenance_margin(
    case: tuple[ModelTable, tuple[NDArray[np.float64], ...]],
) -> None:
    """Plugging the price back: requirements() evaluates MM in the bracket of P, so a
    zero residual also says the solver used the bracket the price falls in."""
    table, units = case
    ix, qty, mark, equity, other = units
    price = table.liquidation_prices(ix.astype(np.intp), qty, mark, equity, other)
    found = ~np.isnan(price)
    assert (price[found] > 0).all()
    residual, scale = residual_and_scale(table, units, price)
    assert (np.abs(residual[found]) <= 1e-9 * scale[found]).all()


@settings(deadline=None, max_examples=300)
@given(margin_units())
def test_liquidation_price_sits_on_the_losing_side_of_mark(
    case: tuple[ModelTable, tuple[NDArray[np.float64], ...]],
) -> None:
    """A healthy long is liquidated below mark, a healthy short above (a short always
    is, eventually); an unhealthy long already above mark. This needs a maintenance
    rate below 100 %: size-scaled rates grow without bound, and past 100 % a rising
    price costs a long more margin than it earns it."""
    table, units = case
    ix, qty, mark, equity, other = (np.asarray(u) for u in units)
    instrument_ix = ix.astype(np.intp)
    _, maintenance = table.requirements(instrument_ix, qty, mark, mark * NAN)
    margin = equity - (other + maintenance)
    assume(bool((np.abs(margin) > 1e-6 * (np.abs(equity) + other + maintenance)).all()))
    healthy = margin > 0
    price = table.liquidation_prices(instrument_ix, qty, mark, equity, other)
    below_full_rate = maintenance < 0.999 * table.notional(instrument_ix, qty, mark)
    long, short = (qty > 0) & below_full_rate, qty < 0
    assert (np.isnan(price[long & healthy]) | (price[long & healthy] < mark[long & healthy])).all()
    assert (price[short & healthy] > mark[short & healthy]).all()
    unhealthy_long = long & ~healthy
    assert (price[unhealthy_long] > mark[unhealthy_long]).all()


@settings(deadline=None)
@given(margin_units())
def test_bankruptcy_price_brings_equity_to_zero_beyond_the_liquidation_price(
    case: tuple[ModelTable, tuple[NDArray[np.float64], ...]],
) -> None:
    table, units = case
    ix, qty, mark, equity, other = units
    instrument_ix = ix.astype(np.intp)
    bankrupt = table.liquidation_prices(
        instrument_ix, qty, mark, equity, other, target_maintenance=False
    )
    size = qty * table.contract_size[instrument_ix]
    found = ~np.isnan(bankrupt)
    at = equity + size * (bankrupt - mark)
    assert (np.abs(at[found]) <= 1e-9 * (np.abs(equity) + np.abs(size * mark))[found]).all()
    liquidation = table.liquidation_prices(instrument_ix, qty, mark, equity, other)
    both = found & ~np.isnan(liquidation) & (equity > 0)
    longs, shorts = both & (qty > 0), both & (qty < 0)
    assert (bankrupt[longs] <= liquidation[longs] * (1 + 1e-12)).all()
    assert (bankrupt[shorts] >= liquidation[shorts] * (1 - 1e-12)).all()


@settings(deadline=None)
@given(st.data())
def test_valuation_is_independent_of_the_order_of_positions(data: st.DataObject) -> None:
    table = data.draw(tables())
    instrument_ix, qty, mark, leverage = data.draw(positions(table))
    order = np.array(data.draw(st.permutations(range(qty.size))), dtype=np.intp)
    initial, maintenance = table.requirements(instrument_ix, qty, mark, leverage)
    shuffled = table.requirements(instrument_ix[order], qty[order], mark[order], leverage[order])
    np.testing.assert_array_equal(shuffled[0], initial[order])
    np.testing.assert_array_equal(shuffled[1], maintenance[order])
