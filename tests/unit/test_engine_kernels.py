"""Each fused kernel agrees with its numpy reference, and the engine's fused path with its
numpy path, on random inputs: books of linear contracts (tiered and size-scaled), unit
figures around every threshold."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.book import NO_ROW, load_cross_accounts
from monitor.engine import Engine, _kernels
from monitor.engine import _width_kernels as widths
from monitor.engine import _width_units as unit_widths
from monitor.engine._judge import judge, judge_reference
from monitor.engine._kernels import (
    HAVE_NUMBA,
    brackets,
    brackets_reference,
    revalue_linear_loops,
    revalue_linear_reference,
    revalue_rows_loops,
    revalue_rows_reference,
)
from monitor.engine._revalue import _CHUNK, figures
from monitor.engine._unit_kernels import (
    revalue_units_loops,
    revalue_units_reference,
    sum_unit_rows,
    sum_unit_rows_reference,
    unit_collateral,
    unit_collateral_reference,
)
from monitor.engine._width_kernels import revalue_linear, revalue_rows
from monitor.engine._width_units import revalue_and_judge, revalue_units
from monitor.schema import Instrument, PriceTick, RateCurve, SizeScaledMargin, Tier, TieredMargin

pytestmark = pytest.mark.unit


def instruments() -> list[Instrument]:
    tiered = TieredMargin(
        tiers=(
            Tier(floor=0, cap=50_000, mmr=0.004, imr=0.008),
            Tier(floor=50_000, cap=600_000, mmr=0.005, imr=0.01),
            Tier(floor=600_000, cap=1e15, mmr=0.01, imr=0.02),
        )
    )
    scaled = SizeScaledMargin(
        im=RateCurve(base=0.02, slope=0.00005), mm=RateCurve(base=0.01, slope=0.00005)
    )
    return [
        Instrument(symbol=f"I{k}", kind="linear", quote="USDT", base=f"B{k}",
                   margin=scaled if k % 3 == 0 else tiered, contract_size=1.0 + k % 2)
        for k in range(7)
    ]  # fmt: skip


def random_book(seed: int, accounts: int = 3_000) -> Engine:
    rng = np.random.default_rng(seed)
    engine = Engine(instruments())
    marks = rng.uniform(10, 50_000, 7)
    engine.apply(
        [], [PriceTick(symbol=f"I{k}", mark_price=float(m), ts=0) for k, m in enumerate(marks)], 0
    )
    per = 3
    account = np.repeat(np.arange(accounts), per)
    instrument = (np.arange(accounts * per) % 7).astype(np.intp)
    entry = marks[instrument] * rng.uniform(0.8, 1.2, account.size)
    qty = rng.lognormal(0, 2, account.size) * rng.choice([-1.0, 1.0], account.size)
    leverage = np.where(
        rng.random(account.size) < 0.5, np.nan, rng.choice([2.0, 20.0, 125.0], account.size)
    )
    balances = rng.lognormal(8, 1, (accounts, 1))
    names = [f"a{i}" for i in range(accounts)]
    load_cross_accounts(engine.book, names, balances, account, instrument, qty, entry, leverage)
    return engine


def kernel_inputs(engine: Engine) -> tuple[object, ...]:
    book = engine.book
    pos, layout, n = book.positions, book.models.layout, book.positions.size
    return (
        pos.instrument[:n], pos.qty[:n], pos.entry[:n], pos.leverage[:n], pos.unit[:n],
        book.mark, layout.contract_size, book.assets.value.take(book.settle_asset),
        layout.n_tiers, layout.floors, layout.mmr, layout.imr, layout.cum,
        layout.mm_slope, layout.im_slope,
    )  # fmt: skip


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_kernel_equals_its_numpy_reference(seed: int) -> None:
    engine = random_book(seed)
    n, units = engine.book.positions.size, engine.book.units.size
    rows_k, units_k = np.empty((n, 3)), np.zeros((units, 5))
    rows_r, units_r = np.empty((n, 3)), np.zeros((units, 5))
    revalue_linear(*kernel_inputs(engine), rows_k, units_k)
    revalue_linear_reference(*kernel_inputs(engine), rows_r, units_r)  # type: ignore[arg-type]
    np.testing.assert_allclose(rows_k, rows_r, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(units_k, units_r, rtol=1e-12, atol=1e-9)
    assert not units_k[:, 0].any()  # collateral is not the revaluation's column


@pytest.mark.parametrize("seed", [12, 13])
def test_the_tick_kernels_equal_their_references(seed: int) -> None:
    engine = random_book(seed)
    book = engine.book
    pos, table = book.positions, book.units
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(pos.size, pos.size // 3, replace=False)).astype(np.intp)
    inputs = kernel_inputs(engine)
    arrays = (pos.instrument, pos.qty, pos.entry, pos.leverage, *inputs[5:])
    fused, reference = pos.figures.copy(), pos.figures.copy()
    revalue_rows(rows, *arrays, fused)
    revalue_rows_reference(rows, *arrays, reference)  # type: ignore[arg-type]
    np.testing.assert_allclose(fused, reference, rtol=1e-12, atol=1e-9)
    units = np.sort(rng.choice(table.size, table.size // 2, replace=False)).astype(np.intp)
    walks = []
    for kernel in (sum_unit_rows, sum_unit_rows_reference):
        figures_out = table.figures.copy()
        kernel(units, table.head, pos.unit_next, fused, figures_out)
        walks.append(figures_out)
    np.testing.assert_array_equal(walks[0], walks[1])  # same order of addition: exact


def bracket_layout(
    rng: np.random.Generator, instruments: int, brackets: int
) -> tuple[np.ndarray, ...]:
    """(n_tiers, floors, mmr, imr, cum) of ``brackets`` columns; some instruments have
    fewer brackets, padded as ``monitor.models._layout`` pads them (floors with +inf)."""
    n_tiers = rng.integers(1, brackets + 1, instruments)
    steps = rng.lognormal(10, 1, (instruments, brackets))
    floors = np.concatenate([np.zeros((instruments, 1)), np.cumsum(steps, axis=1)[:, :-1]], 1)
    mmr = np.sort(rng.uniform(0.001, 0.1, (instruments, brackets)), axis=1)
    imr, cum = mmr * 2.0, rng.uniform(0, 1_000, (instruments, brackets))
    padded = np.arange(brackets) >= n_tiers[:, None]
    floors[padded], mmr[padded], imr[padded], cum[padded] = np.inf, 0.0, 0.0, 0.0
    return n_tiers.astype(np.intp), floors, mmr, imr, cum


@pytest.mark.skipif(not HAVE_NUMBA, reason="the width classes are numba kernels")
@pytest.mark.parametrize("brackets", [1, 2, 5, 6, 9, 10, 13, 17, 18])
def test_each_width_class_equals_the_generic_kernel_to_the_bit(brackets: int) -> None:
    """The kernels with their floors known at compile time (``WIDTHS``) give what
    the loops over the layout's arrays give, bit for bit, and the reference to rounding;
    positions sit on, just inside and far past every floor, some are closed, some have
    no leverage set. Past the widest class the generic kernel runs."""
    rng = np.random.default_rng(brackets)
    instruments, n = 40, 30_000
    n_tiers, floors, mmr, imr, cum = bracket_layout(rng, instruments, brackets)
    instrument = rng.integers(0, instruments, n).astype(np.int32)
    mark = rng.uniform(1, 1_000, instruments)
    contract_size = rng.choice([1.0, 0.01, 10.0], instruments)
    on_floor = floors[instrument, rng.integers(0, brackets, n)]
    notional = np.where(np.isfinite(on_floor), on_floor, 1e12) * rng.choice(
        [1.0, 1.0 - 1e-15, 1.0 + 1e-15, 0.5, 3.0], n
    )
    qty = notional / (contract_size[instrument] * mark[instrument]) * rng.choice([-1.0, 1.0], n)
    qty[rng.random(n) < 0.05] = 0.0
    entry = mark[instrument] * rng.uniform(0.9, 1.1, n)
    leverage = np.where(rng.random(n) < 0.5, np.nan, rng.choice([2.0, 20.0, 125.0], n))
    unit = np.sort(rng.integers(0, n // 3, n)).astype(np.int32)
    rng.shuffle(unit[: n // 2])  # half the rows of a unit together, half scattered
    inputs = (
        instrument, qty, entry, leverage, unit, mark, contract_size,
        rng.choice([1.0, 60_000.0], instruments), n_tiers, floors, mmr, imr, cum,
        rng.uniform(0, 1e-5, instruments), rng.uniform(0, 1e-5, instruments),
    )  # fmt: skip
    width_class = widths._class_of(floors, n)
    assert (width_class < 0) == (brackets - 1 > max(widths.WIDTHS))
    assert widths._class_of(floors, instruments - 1) < 0  # fewer rows than instruments
    out = {}
    for name, kernel in (
        ("class", revalue_linear),
        ("generic", revalue_linear_loops),
        ("reference", revalue_linear_reference),
    ):
        rows, units = np.full((n, 3), np.nan), np.zeros((n // 3, 5))
        kernel(*inputs, rows, units)
        out[name] = rows, units
    for got, want in zip(out["class"], out["generic"], strict=True):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(out["class"], out["reference"], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)
    picked = np.sort(rng.choice(n, n // 4, replace=False)).astype(np.intp)
    tick = {}
    for name, rows_kernel in (("class", revalue_rows), ("generic", revalue_rows_loops)):
        figures_out = np.full((n, 3), np.nan)
        rows_kernel(picked, *inputs[:4], *inputs[5:], figures_out)
        tick[name] = figures_out
    np.testing.assert_array_equal(tick["class"], tick["generic"])
    np.testing.assert_array_equal(tick["class"][picked], out["generic"][0][picked])
    # Every row of some units, along row lists in no particular order: the unit sums
    # are what the full revaluation added up in row order, to the bit.
    head, unit_next = np.full(n // 3, NO_ROW, dtype=np.int32), np.full(n, NO_ROW, dtype=np.int32)
    for r in rng.permutation(np.flatnonzero(qty != 0.0)).tolist():
        unit_next[r], head[unit[r]] = head[unit[r]], r
    chosen = np.sort(rng.choice(n // 3, n // 12, replace=False)).astype(np.intp)
    assert widths._class_of(floors, chosen.size) == width_class
    by_units = {}
    for name, units_kernel in (
        ("class", revalue_units),
        ("generic", revalue_units_loops),
        ("reference", revalue_units_reference),
    ):
        rows, sums = np.full((n, 3), np.nan), np.full((n // 3, 5), np.nan)
        units_kernel(chosen, head, unit_next, *inputs[:4], *inputs[5:], rows, sums)
        by_units[name] = rows, sums
    for got, want in zip(by_units["class"], by_units["generic"], strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(by_units["reference"][1], by_units["class"][1], rtol=1e-12)
    np.testing.assert_array_equal(by_units["class"][1][chosen, 1:], out["generic"][1][chosen, 1:])
    listed = np.flatnonzero(np.isin(unit, chosen) & (qty != 0.0))
    np.testing.assert_array_equal(by_units["class"][0][listed], out["generic"][0][listed])
    # Revalued and judged in one walk: what the two steps give one after the other.
    state = rng.integers(0, 4, n // 3).astype(np.int8)
    open_positions = np.bincount(unit[qty != 0.0], minlength=n // 3).astype(np.int32)
    collateral = rng.lognormal(np.log(50_000.0), 2.0, n // 3)
    judged = {}
    for name, one_walk in (("fused", True), ("two steps", False)):
        rows, sums = np.full((n, 3), np.nan), np.full((n // 3, 5), np.nan)
        sums[:, 0] = collateral
        states, counts = state.copy(), np.zeros(n // 3, dtype=np.int64)
        changed, previous = np.full(chosen.size, -1, np.intp), np.full(chosen.size, -1, np.int8)
        if one_walk:
            found = revalue_and_judge(
                chosen, head, unit_next, *inputs[:4], *inputs[5:], rows, sums, states, counts,
                open_positions, 0.8, 0.1, changed, previous,
            )  # fmt: skip
        else:
            revalue_units_reference(chosen, head, unit_next, *inputs[:4], *inputs[5:], rows, sums)
            found = judge_reference(chosen, states, counts, sums, open_positions, 0.8, 0.1,
                                    changed, previous)  # fmt: skip
        judged[name] = rows, sums, states, counts, changed[:found], previous[:found]
    assert judged["fused"][4].size > 10  # some units changed state
    for got, want in zip(judged["fused"][2:], judged["two steps"][2:], strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(judged["fused"][1], judged["two steps"][1], rtol=1e-12)


@pytest.mark.parametrize("seed", [4, 5])
def test_the_fused_recompute_equals_the_engines_numpy_path(seed: int) -> None:
    engine = random_book(seed)
    book = engine.book
    pos = book.positions
    n = pos.size
    expected = np.empty((3, n))
    for start in range(0, n, _CHUNK):
        part = slice(start, min(n, start + _CHUNK))
        expected[:, part] = figures(
            book, pos.instrument[part], pos.qty[part], pos.entry[part], pos.leverage[part]
        )
    engine.full_recompute()
    np.testing.assert_allclose(pos.figures[:n].T, expected, rtol=1e-12, atol=1e-9)
    assert engine.verify() == []
    fused_units = book.units.figures[: book.units.size].copy()
    fused_states = book.units.state[: book.units.size].copy()
    _kernels.ENABLED = False
    try:
        engine.full_recompute()
        assert engine.verify() == []
    finally:
        _kernels.ENABLED = HAVE_NUMBA
    np.testing.assert_allclose(book.units.figures[: book.units.size], fused_units, rtol=1e-12)
    np.testing.assert_array_equal(book.units.state[: book.units.size], fused_states)


@pytest.mark.parametrize("seed", [6, 7])
def test_the_tier_lookup_kernel_equals_the_layouts_lookup(seed: int) -> None:
    engine = random_book(seed, accounts=500)
    layout = engine.book.models.layout
    rng = np.random.default_rng(seed)
    instrument = rng.integers(0, 7, 20_000).astype(np.intp)
    # around every floor, exactly on it, and far beyond the last cap
    floors = layout.floors[instrument, rng.integers(0, layout.max_tiers, instrument.size)]
    floors = np.where(np.isfinite(floors), floors, 1e16)
    notional = floors * rng.choice([1.0, 1.0 - 1e-15, 1.0 + 1e-15, 0.5, 3.0], instrument.size)
    out = np.empty(instrument.size, dtype=np.intp)
    brackets(instrument, notional, layout.n_tiers, layout.floors, out)
    np.testing.assert_array_equal(out, brackets_reference(layout, instrument, notional))


def test_the_collateral_kernel_equals_its_reference() -> None:
    rng = np.random.default_rng(11)
    units, accounts, rows, assets = 2_000, 1_500, 3_000, 3
    unit_row = np.where(rng.random(units) < 0.7, -1, rng.integers(0, rows, units)).astype(np.intp)
    unit_account = rng.integers(0, accounts, units).astype(np.intp)
    balance = rng.normal(0, 1_000, (accounts, assets))
    value = np.array([1.0, 60_000.0, 3_000.0])
    haircut = np.array([0.0, 0.05, 0.1])
    isolated_margin = rng.uniform(0, 500, rows)
    row_instrument = rng.integers(0, 4, rows).astype(np.intp)
    settle_value = np.array([1.0, 1.0, 60_000.0, 3_000.0])
    inputs = (unit_row, unit_account, balance, value, haircut, isolated_margin, row_instrument,
              settle_value)  # fmt: skip
    fused, reference = np.empty(units), np.empty(units)
    unit_collateral(*inputs, fused)
    unit_collateral_reference(*inputs, reference)
    np.testing.assert_allclose(fused, reference, rtol=1e-13, atol=1e-9)


def unit_figures_near_thresholds(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit figures whose equity sits on, just inside or just outside each threshold."""
    figures = np.empty((n, 5))
    maintenance = rng.lognormal(5, 1, n)
    initial = maintenance * rng.uniform(1.2, 2.5, n)
    gross = rng.lognormal(5, 2, n)
    anchor = np.stack(
        [np.zeros(n), maintenance, initial, 0.1 * maintenance, 1.1 * maintenance,
         1.1 * initial, maintenance / 0.8, maintenance / 0.72]
    )[rng.integers(0, 8, n), np.arange(n)]  # fmt: skip
    nudge = rng.choice([0.0, 1e-13, -1e-13, 1e-9, -1e-9, 1e-3, -1e-3, 0.5], n)
    equity = anchor * (1.0 + nudge) + rng.choice([0.0, 1e-12, -1e-12], n)
    collateral = rng.normal(0, 1, n) * gross
    figures[:, 0], figures[:, 1] = collateral, equity - collateral
    figures[:, 2], figures[:, 3], figures[:, 4] = initial, maintenance, gross
    figures[rng.random(n) < 0.01] = np.nan
    return figures


@pytest.mark.parametrize("seed", [8, 9, 10])
def test_the_state_kernel_equals_classify(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 50_000
    figures = unit_figures_near_thresholds(rng, n)
    state = rng.integers(0, 4, n).astype(np.int8)
    transitions = rng.integers(0, 5, n).astype(np.int64)
    open_positions = np.where(rng.random(n) < 0.1, 0, rng.integers(1, 4, n)).astype(np.intp)
    ids = np.sort(rng.choice(n, n // 2, replace=False)).astype(np.intp)
    results = []
    for fn in (judge, judge_reference):
        s, t = state.copy(), transitions.copy()
        changed, previous = np.empty(ids.size, dtype=np.intp), np.empty(ids.size, dtype=np.int8)
        count = fn(ids, s, t, figures, open_positions, 0.8, 0.1, changed, previous)
        results.append((s, t, changed[:count], previous[:count]))
    for fused, reference in zip(*results, strict=True):
        np.testing.assert_array_equal(fused, reference)
    assert 0 < results[0][2].size < ids.size


def test_numba_is_there_to_fuse() -> None:
    assert HAVE_NUMBA, "numba is a dependency: `pip install -e '.[dev]'`"


@pytest.mark.skipif(not HAVE_NUMBA, reason="the width classes are numba kernels")
def test_every_width_class_is_compiled_for_what_any_class_was() -> None:
    """The warm-up runs books of one width class; ``compile_every_width`` gives the other
    classes the same signatures, so a venue with other brackets compiles nothing in a
    cycle. Here one class alone meets a new signature (every other row of a column)."""
    engine = random_book(14, accounts=300)
    inputs = kernel_inputs(engine)
    strided = tuple(a[::2] if i in (0, 1, 2, 3, 4) else a for i, a in enumerate(inputs))
    n = engine.book.positions.size
    widths.revalue_linear_4(*strided, np.empty((n, 3))[::2], np.zeros((n, 5)))
    assert len(widths.revalue_linear_4.signatures) > len(widths.revalue_linear_8.signatures)
    unit_widths.compile_every_width()
    for family in (
        (*widths._LINEAR, revalue_linear_loops),
        (*widths._ROWS, revalue_rows_loops),
        (*unit_widths._UNITS, revalue_units_loops),
        unit_widths._JUDGED,
    ):
        assert len({frozenset(kernel.signatures) for kernel in family}) == 1
