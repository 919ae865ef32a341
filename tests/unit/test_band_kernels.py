"""Price bands (``monitor.engine._band_kernels``): each kernel equals its numpy reference,
and a band is sound: at any marks inside its rows' bands, a unit's state, computed by the
independent reference of ``tests/reference`` (which shares no arithmetic with the engine),
is the state the engine keeps for it without revaluing it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from monitor.book import HOLDER_BLOCK, NO_ROW, load_cross_accounts
from monitor.engine import Engine, EngineConfig
from monitor.engine._band_kernels import band_units, band_units_reference
from monitor.engine._unit_kernels import revalue_units_loops, revalue_units_reference
from monitor.engine._width_units import revalue_units
from monitor.schema import (
    Fill,
    LedgerEvent,
    MarginEvent,
    PriceTick,
    Transfer,
)
from monitor.states import LIQUIDATION, STATE_NAMES
from tests.reference.margin import margins
from tests.reference.states import judge
from tests.unit.test_engine_kernels import instruments  # 7 linear: tiered and size-scaled

pytestmark = pytest.mark.unit

CONFIG = EngineConfig()


def banded_book(seed: int, accounts: int = 2_000, config: EngineConfig = CONFIG) -> Engine:
    """Cross accounts of one to three positions, some near every threshold, judged and
    banded at random marks."""
    rng = np.random.default_rng(seed)
    engine = Engine(instruments(), config)
    marks = rng.uniform(10, 50_000, 7)
    engine.apply(
        [], [PriceTick(symbol=f"I{k}", mark_price=float(m), ts=0) for k, m in enumerate(marks)], 0
    )
    per = rng.integers(1, 4, accounts)
    account = np.repeat(np.arange(accounts), per)
    instrument = np.concatenate([rng.choice(7, k, replace=False) for k in per]).astype(np.intp)
    entry = marks[instrument] * rng.uniform(0.9, 1.1, account.size)
    notional = rng.lognormal(np.log(30_000), 1.5, account.size)  # across the brackets
    qty = notional / entry / (1.0 + instrument % 2) * rng.choice([-1.0, 1.0], account.size)
    leverage = np.where(
        rng.random(account.size) < 0.5, np.nan, rng.choice([2.0, 20.0, 125.0], account.size)
    )
    balances = rng.lognormal(np.log(2_000), 1.5, (accounts, 1))
    names = [f"a{i}" for i in range(accounts)]
    load_cross_accounts(engine.book, names, balances, account, instrument, qty, entry, leverage)
    engine.full_recompute()  # no bands yet: the next move of its marks judges every unit
    moved = marks * (1.0 + 1e-9)
    engine.apply(
        [], [PriceTick(symbol=f"I{k}", mark_price=float(m), ts=1) for k, m in enumerate(moved)], 1
    )
    return engine


def test_a_full_recompute_drops_the_bands_and_the_next_move_judges_everyone() -> None:
    engine = banded_book(11, accounts=500)
    pos, n = engine.book.positions, engine.book.positions.size
    assert np.isfinite(pos.band_low[:n]).any()
    engine.full_recompute()
    assert (pos.band_low[:n] == np.inf).all()
    ticks = [PriceTick(symbol=s, mark_price=float(m) * 1.000001, ts=5)
             for s, m in zip(engine.book.symbols, engine.book.mark, strict=True)]  # fmt: skip
    engine.apply([], ticks, 5)
    holders = np.unique(pos.unit[:n][pos.unit[:n] != NO_ROW])
    assert engine.revalued_by_prices == holders.size


def layout_inputs(engine: Engine) -> tuple[object, ...]:
    book = engine.book
    layout = book.models.layout
    return (
        book.mark, layout.contract_size, book.assets.value.take(book.settle_asset),
        layout.n_tiers, layout.floors, layout.mmr, layout.imr,
    )  # fmt: skip


@pytest.mark.parametrize("seed", [3, 4])
def test_the_revalue_and_band_kernels_equal_their_references(seed: int) -> None:
    engine = banded_book(seed)
    book, rng = engine.book, np.random.default_rng(seed)
    pos, table, layout = book.positions, book.units, book.models.layout
    book.mark[:] *= rng.uniform(0.97, 1.03, len(book.symbols))
    units = np.sort(rng.choice(table.size, table.size // 2, replace=False)).astype(np.intp)
    results = []
    for kernel in (revalue_units, revalue_units_loops, revalue_units_reference):
        rows_out, units_out = pos.figures.copy(), table.figures.copy()
        kernel(
            units, table.head, pos.unit_next, pos.instrument, pos.qty, pos.entry, pos.leverage,
            book.mark, layout.contract_size, book.assets.value.take(book.settle_asset),
            layout.n_tiers, layout.floors, layout.mmr, layout.imr, layout.cum, layout.mm_slope,
            layout.im_slope, rows_out, units_out,
        )  # fmt: skip
        results.append((rows_out, units_out))
    for other in results[1:]:  # same arithmetic, same order
        np.testing.assert_array_equal(results[0][0], other[0])
        np.testing.assert_array_equal(results[0][1], other[1])
    eligible = rng.random(units.size) < 0.8
    head = table.head.copy()
    head[units[:3]] = NO_ROW  # units with no open row: never unbanded, cleared if they were
    bands = []
    for kernel in (band_units, band_units_reference):
        low, high = pos.band_low.copy(), pos.band_high.copy()
        unbanded = table.unbanded.copy()
        unbanded[units[1::2]] = True  # some were unbanded before, some not
        before = unbanded.copy()
        became, left = kernel(
            units, eligible, head, pos.unit_next, pos.instrument, pos.qty, pos.leverage,
            *layout_inputs(engine), layout.mm_slope, layout.im_slope, results[0][1],
            CONFIG.margin_call_ratio, CONFIG.hysteresis, low, high, unbanded,
        )  # fmt: skip
        assert became == int(np.count_nonzero(unbanded & ~before))
        assert left == int(np.count_nonzero(before & ~unbanded))
        assert became > 0
        assert left > 0
        bands.append((low, high, unbanded))
    for got, want in zip(bands[0], bands[1], strict=True):
        np.testing.assert_array_equal(got, want)
    low, high, unbanded = bands[0]
    assert not unbanded[units[:3]].any()
    listed = units[3:]
    rows = np.flatnonzero(np.isin(pos.unit[: pos.size], listed))
    wide = low[rows] == -np.inf
    assert np.isfinite(low[rows]).any()  # some rows banded
    assert wide.any()  # and some not
    np.testing.assert_array_equal(wide, unbanded[pos.unit[rows]])  # wide iff unbanded
    np.testing.assert_array_equal(high[rows] == np.inf, wide)
    assert unbanded[listed[~eligible[3:]]].all()  # in liquidation, say: no band


def test_a_units_revaluation_sums_as_the_full_revaluation_does() -> None:
    """Row order whatever the list order: bit for bit what ``full_recompute`` wrote."""
    engine = banded_book(10)
    book = engine.book
    pos, table, layout = book.positions, book.units, book.models.layout
    full = table.figures[: table.size].copy()
    units = np.arange(table.size, dtype=np.intp)[::-1].copy()
    for kernel in (revalue_units, revalue_units_loops, revalue_units_reference):
        out = table.figures.copy()
        out[:, 1:] = np.nan
        kernel(
            units, table.head, pos.unit_next, pos.instrument, pos.qty, pos.entry, pos.leverage,
            book.mark, layout.contract_size, book.assets.value.take(book.settle_asset),
            layout.n_tiers, layout.floors, layout.mmr, layout.imr, layout.cum, layout.mm_slope,
            layout.im_slope, pos.figures.copy(), out,
        )  # fmt: skip
        np.testing.assert_array_equal(out[: table.size], full)


def _reference_state(engine: Engine, unit: int, marks: dict[int, float], previous: str) -> str:
    """The unit's state at ``marks`` by the independent reference (cross, USDT only)."""
    book = engine.book
    pos = book.positions
    account = int(book.units.account[unit])
    equity = float(book.accounts.balance[account, 0])
    initial = maintenance = 0.0
    count = 0
    row = int(book.units.head[unit])
    while row != NO_ROW:
        ix = int(pos.instrument[row])
        instrument = book.instruments[ix]
        qty, mark = float(pos.qty[row]), marks[ix]
        lev = float(pos.leverage[row])
        equity += qty * instrument.contract_size * (mark - float(pos.entry[row]))
        im, mm = margins(instrument, qty, mark, None if lev != lev else lev)
        initial, maintenance = initial + im, maintenance + mm
        count += 1
        row = int(pos.unit_next[row])
    return judge(
        previous, equity, initial, maintenance, count, CONFIG.margin_call_ratio, CONFIG.hysteresis
    )


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_no_marks_inside_a_units_bands_change_its_state(seed: int) -> None:
    """Every corner of each banded unit's box of marks (each row's mark at the lowest or
    highest float inside its band) and random points inside it."""
    engine = banded_book(seed, accounts=1_500)
    book, rng = engine.book, np.random.default_rng(seed)
    pos, table = book.positions, book.units
    checked = skipped = 0
    for unit in range(table.size):
        row = int(table.head[unit])
        rows = []
        while row != NO_ROW:
            rows.append(row)
            row = int(pos.unit_next[row])
        if not rows or not np.isfinite(pos.band_low[rows[0]]):
            continue
        state = STATE_NAMES[int(table.state[unit])]
        judged = {int(ix): float(m) for ix, m in enumerate(book.mark)}
        if _reference_state(engine, unit, judged, state) != state:
            skipped += 1  # within the engine's rounding tolerance of a threshold
            continue
        edges = [
            (np.nextafter(float(pos.band_low[r]), np.inf),
             np.nextafter(float(pos.band_high[r]), -np.inf))
            for r in rows
        ]  # fmt: skip
        points = list(itertools.product(*edges))
        points += [tuple(rng.uniform(lo, hi) for lo, hi in edges) for _ in range(3)]
        for point in points:
            marks = dict(judged)
            for r, mark in zip(rows, point, strict=True):
                marks[int(pos.instrument[r])] = mark
            assert _reference_state(engine, unit, marks, state) == state, (unit, point)
        checked += 1
    assert checked > 500
    assert skipped <= 2


def test_a_tick_inside_the_bands_revalues_nobody_and_one_outside_its_holders() -> None:
    engine = banded_book(8)
    book = engine.book
    symbols = book.symbols
    unbanded = int(np.count_nonzero(book.units.unbanded[: book.units.size]))
    assert unbanded == book.units.unbanded_count
    calm = [PriceTick(symbol=s, mark_price=float(m) * (1 + 1e-7), ts=1)
            for s, m in zip(symbols, book.mark, strict=True)]  # fmt: skip
    engine.apply([], calm, 1)
    quiet = engine.revalued_by_prices
    holders = np.unique(book.positions.unit[book.positions.holders_of(0)])
    engine.apply([], [PriceTick(symbol=symbols[0], mark_price=float(book.mark[0]) * 1.5, ts=2)], 2)
    assert engine.revalued_by_prices >= holders.size * 0.9
    # A move of 1e-7 leaves only the units without a band (in liquidation or bankrupt,
    # or nearer a threshold than rounding) and the very few this close to one.
    assert unbanded <= quiet <= unbanded + book.units.size // 100
    assert unbanded < book.units.size // 2
    assert engine.verify() == []


def test_units_in_liquidation_are_found_by_their_flag_not_by_their_rows() -> None:
    """No band for a unit in liquidation or bankrupt: it is flagged unbanded and its rows'
    bands are wide open, so the blocks of holders it shares with banded units can still
    be skipped, and a tick of one of its marks judges it all the same."""
    engine = banded_book(9)
    book = engine.book
    table, pos, n = book.units, book.positions, book.positions.size
    severe = np.flatnonzero(table.state[: table.size] >= LIQUIDATION)
    assert severe.size
    assert table.unbanded[severe].all()
    assert table.unbanded_count == np.count_nonzero(table.unbanded[: table.size])
    rows = np.flatnonzero(np.isin(pos.unit[:n], severe))
    assert (pos.band_low[rows] == -np.inf).all()
    assert (pos.band_high[rows] == np.inf).all()
    # A calm tick of every instrument reads every block once (bands were just drawn)...
    calm = [PriceTick(symbol=s, mark_price=float(m) * (1 + 1e-7), ts=1)
            for s, m in zip(book.symbols, book.mark, strict=True)]  # fmt: skip
    engine.apply([], calm, 1)
    # ...after which nearly every block of instrument 0 holds its mark: the unbanded
    # rows in most of them do not count. Blocks that hold the mark are not read.
    holders = pos.holders
    listed = pos.holders_of(0)
    blocks = (int(holders.start[0]) + np.arange(listed.size)) // HOLDER_BLOCK
    with_unbanded = np.unique(blocks[table.unbanded[pos.unit[listed]]])
    assert with_unbanded.size > np.unique(blocks).size // 2
    mark = float(book.mark[0]) * (1 + 1e-7)
    held = (holders.block_low[with_unbanded] < mark) & (mark < holders.block_high[with_unbanded])
    assert held.mean() > 0.8
    # A tick of instrument 0 judges its unbanded holders, found by their flag (from the
    # list of them kept since the last flag changed: no scan of every unit's flag).
    assert table.unbanded_ids is not None
    np.testing.assert_array_equal(table.unbanded_ids, np.flatnonzero(table.unbanded[: table.size]))
    unbanded_holders = np.unique(pos.unit[listed][table.unbanded[pos.unit[listed]]])
    engine.apply([], [PriceTick(symbol=book.symbols[0], mark_price=mark, ts=2)], 2)
    assert unbanded_holders.size <= engine.revalued_by_prices <= unbanded_holders.size + 20
    assert engine.verify() == []
    # A unit leaving liquidation (a deposit) changes the flags: the list is read again.
    unit = int(severe[0])
    account = book.account_names[int(table.account[unit])]
    engine.apply([Transfer(transfer_id="rescue", account=account, asset="USDT",
                           amount=1e9, ts=3)], [], 3)  # fmt: skip
    assert not table.unbanded[unit]
    assert table.unbanded_ids is None or unit not in table.unbanded_ids
    engine.apply([], [PriceTick(symbol=s, mark_price=float(m) * (1 + 2e-7), ts=4)
                      for s, m in zip(book.symbols, book.mark, strict=True)], 4)  # fmt: skip
    np.testing.assert_array_equal(table.unbanded_ids, np.flatnonzero(table.unbanded[: table.size]))
    assert engine.verify() == []


def test_a_reopened_position_has_no_band_until_its_unit_is_judged() -> None:
    """A row keeps its band when it closes; opening again, it starts with none (flagged
    at the next move), so a band left wide open for a unit in liquidation never outlives
    that unit's flag."""
    engine = banded_book(9, accounts=300)
    pos = engine.book.positions
    row = int(pos.holders_of(0)[0])
    pos.band_low[row], pos.band_high[row] = -np.inf, np.inf
    pos.remove_holder(row)
    pos.add_holder(row)
    assert pos.band_low[row] == np.inf
    assert pos.band_high[row] == -np.inf


@pytest.mark.parametrize("seed", [12, 13])
def test_a_banded_engine_publishes_what_an_unbanded_one_does_on_a_busy_book(seed: int) -> None:
    """Thousands of accounts near their thresholds, every instrument ticking each cycle
    (small steps and the odd jump), fills and transfers in between: the same events, in
    the same order, with the same figures within rounding."""
    engines = [
        banded_book(seed, accounts=2_000, config=EngineConfig(price_bands=bands))
        for bands in (True, False)
    ]
    rng = np.random.default_rng(seed)
    symbols = engines[0].book.symbols
    marks = engines[0].book.mark.copy()
    published: list[list[MarginEvent]] = [[], []]
    revalued = [0, 0]
    for ts in range(2, 60):
        step = rng.normal(0.0, 0.002 if ts % 10 else 0.02, marks.size)
        marks *= np.exp(step)
        ticks = [PriceTick(symbol=s, mark_price=float(m), ts=ts)
                 for s, m in zip(symbols, marks, strict=True)]  # fmt: skip
        ledger: list[LedgerEvent] = []
        for k in range(int(rng.integers(0, 4))):
            account = f"a{int(rng.integers(0, 2_000))}"
            ix = int(rng.integers(0, len(symbols)))
            ledger.append(
                Fill(fill_id=f"f{ts}-{k}", account=account, symbol=symbols[ix],
                     side="buy" if rng.random() < 0.5 else "sell",
                     qty=float(rng.uniform(0.01, 2.0)), price=float(marks[ix]), ts=ts)
            )  # fmt: skip
            if rng.random() < 0.5:
                ledger.append(
                    Transfer(transfer_id=f"t{ts}-{k}", account=account, asset="USDT",
                             amount=float(rng.normal(0.0, 500.0)), ts=ts)
                )  # fmt: skip
        for k, (engine, out) in enumerate(zip(engines, published, strict=True)):
            out.extend(engine.apply(ledger, ticks, ts))
            revalued[k] += engine.revalued_by_prices
    banded, every = published
    assert len(banded) > 500
    assert revalued[0] < revalued[1] // 2  # the bands did skip most units
    assert [(e.event_id, e.type, e.state, e.trigger_ts) for e in banded] == [
        (e.event_id, e.type, e.state, e.trigger_ts) for e in every
    ]
    for with_bands, without in zip(banded, every, strict=True):
        scale = abs(without.equity) + abs(without.maintenance_margin) + 1.0
        assert abs(with_bands.equity - without.equity) <= 1e-9 * scale
    assert engines[0].verify() == []
    assert engines[1].verify() == []
