"""A cycle's events are built together (``build_events``: the positions' figures of every
event in one vectorised pass). Each event's positions are what the unit alone gives, to
the bit, whatever units share the pass: cross and isolated units, linear, inverse and
option positions, collateral priced by a position's own mark."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.book import Book
from monitor.engine import Engine
from monitor.engine._events import build_event, build_events, price_triggers
from monitor.engine._reduction import kept_fraction, kept_fractions
from monitor.engine._risk import (
    UnitRows,
    _exposures_of,
    position_risks,
    position_risks_of,
    unit_rows,
    units_rows,
)
from monitor.engine._warm import _linear_book, _option_book, _ticks
from monitor.schema import PriceTick, Transfer
from monitor.states import LIQUIDATION, MARGIN_CALL

pytestmark = pytest.mark.unit


def books() -> list[Engine]:
    """The warm-up's two books after a sell-off of 30 %, so that some units are in
    liquidation and need reducing."""
    linear, prices = _linear_book()
    options, option_prices, _ = _option_book()
    ts = 1_800_000_000_000
    wallets = [  # WARM collateral, which the WARMUSDT mark prices, in every wallet
        Transfer(transfer_id=f"w{k}", account=name, asset="WARM", amount=0.5, ts=ts)
        for k, name in enumerate(options.book.account_names)
    ]
    options.apply(wallets, [], ts)
    for engine, marks in ((linear, prices), (options, option_prices)):
        engine.apply([], _ticks({s: p * 0.7 for s, p in marks.items()}, ts + 1), ts + 1)
    return [linear, options]


@pytest.mark.parametrize("which", [0, 1])
def test_positions_of_many_units_are_those_of_each_alone(which: int) -> None:
    engine = books()[which]
    book = engine.book
    units = list(range(book.units.size))
    rng = np.random.default_rng(which)
    rng.shuffle(units)  # in any order
    rows_of = [unit_rows(book, unit) for unit in units]
    together = position_risks_of(book, units, UnitRows.of_lists(rows_of))
    assert sum(len(risks) for risks in together) == sum(r.shape[0] for r in rows_of) > 0
    for unit, risks in zip(units, together, strict=True):
        assert risks == position_risks(book, unit)
    if which == 1:  # collateral priced by a position's mark: some units move with it
        assert _exposures_of(book, units, UnitRows.of_lists(rows_of)).equity_slope.any()


@pytest.mark.parametrize("which", [0, 1])
def test_rows_of_many_units_are_those_of_each_alone(which: int) -> None:
    book = books()[which].book
    units = list(range(book.units.size))
    np.random.default_rng(which).shuffle(units)
    together = units_rows(book, units)
    assert len(together.counts) == len(units)
    for k, unit in enumerate(units):
        np.testing.assert_array_equal(together.of(k), unit_rows(book, unit))
        assert (
            together.slot[together.starts[k] : together.starts[k] + together.counts[k]] == k
        ).all()
    assert max(together.counts) > 1  # sorted by instrument in a unit
    picked = together.pick([3, 0])
    np.testing.assert_array_equal(picked.of(0), together.of(3))
    np.testing.assert_array_equal(picked.of(1), together.of(0))
    assert units_rows(book, []).rows.shape == (0,)


@pytest.mark.parametrize("which", [0, 1])
def test_events_built_together_are_those_built_one_at_a_time(which: int) -> None:
    engine = books()[which]
    book = engine.book
    units = [u for u in range(book.units.size) if unit_rows(book, u).shape[0]]
    transitions = [
        (u, MARGIN_CALL, LIQUIDATION) if k % 2 else (u, 0, MARGIN_CALL) for k, u in enumerate(units)
    ]
    together = build_events(
        book, transitions, lambda us, _rows: [("price", 1_000 + u) for u in us], 7
    )
    for (unit, previous, new), event in zip(transitions, together, strict=True):
        alone = build_event(book, unit, previous, new, "price", 1_000 + unit, 7)
        assert event == alone
    assert any(event.reductions for event in together)  # severe events carry reductions


def _bisected(book: Book, rows: np.ndarray, equity: float) -> float:
    """The largest fraction of every position of ``rows`` whose IM (``Book.values``, at
    the marks) is at most ``equity``, by bisection: IM grows with the fraction."""
    pos = book.positions
    instrument, qty = pos.instrument[rows], pos.qty[rows]
    mark = book.mark[instrument]
    value = book.assets.value[book.settle_asset[instrument]]

    def im(fraction: float) -> float:
        _, initial, _ = book.values(instrument, qty * fraction, mark, pos.leverage[rows], mark)
        return float((initial * value).sum())

    if not equity > 0.0:
        return 0.0
    if im(1.0) <= equity:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if im(mid) <= equity else (lo, mid)
    return lo


@pytest.mark.parametrize("which", [0, 1])
def test_kept_fractions_of_many_units_are_each_units_and_the_bisections(which: int) -> None:
    engine = books()[which]
    book = engine.book
    units = [u for u in range(book.units.size) if unit_rows(book, u).shape[0]]
    rows_of = [unit_rows(book, u) for u in units]
    rows = np.concatenate(rows_of)
    pos, table = book.positions, book.units
    instrument = pos.instrument[rows]
    equity = table.collateral[units] + table.upnl[units]
    together = kept_fractions(
        book, np.repeat(np.arange(len(units)), [r.shape[0] for r in rows_of]), instrument,
        pos.qty[rows], book.mark[instrument], pos.leverage[rows],
        book.assets.value[book.settle_asset[instrument]], equity,
    )  # fmt: skip
    reduced = 0
    for k, unit_rows_k in enumerate(rows_of):
        ix = pos.instrument[unit_rows_k]
        alone = kept_fraction(
            book, ix, pos.qty[unit_rows_k], book.mark[ix], pos.leverage[unit_rows_k],
            book.assets.value[book.settle_asset[ix]], float(equity[k]),
        )  # fmt: skip
        assert together[k] == alone
        assert together[k] == pytest.approx(
            _bisected(book, unit_rows_k, float(equity[k])), abs=1e-9
        )
        reduced += 0.0 < together[k] < 1.0
    assert reduced  # some units are reduced in part, not only kept or closed


def test_a_units_trigger_is_the_newest_tick_of_its_instruments_or_wallet() -> None:
    engine = books()[1]  # WARM wallets, priced by the WARMUSDT tick
    book = engine.book
    warm = book.instrument_index["WARMUSDT"]
    asset = book.assets.names.index("WARM")

    def tick(symbol: str, ts: int) -> PriceTick:
        return PriceTick(symbol=symbol, mark_price=1.0, ts=ts)

    others = [ix for ix in range(len(book.symbols)) if ix != warm]
    moved = {warm: [tick("WARMUSDT", 5), tick("WARMUSDT", 9)], others[0]: [tick("X", 7)]}
    with_wallet = price_triggers(book, moved, {asset: tick("WARMUSDT", 11)})
    without = price_triggers(book, moved, {})
    nothing = price_triggers(book, {}, {})
    units = list(range(book.units.size))
    rows_of = [unit_rows(book, unit) for unit in units]
    got = {
        name: triggers(units, UnitRows.of_lists(rows_of))
        for name, triggers in (("wallet", with_wallet), ("without", without), ("none", nothing))
    }
    seen = set()
    for unit, rows in zip(units, rows_of, strict=True):
        held = set(book.positions.instrument[rows].tolist())
        wallet = book.units.row[unit] < 0 and book.accounts.balance[book.units.account[unit], asset]
        stamps = [9] * (warm in held) + [7] * (others[0] in held)
        assert got["without"][unit] == (("price", max(stamps)) if stamps else ("restore", 0))
        expected = [*stamps, 11] if wallet else stamps
        assert got["wallet"][unit] == (("price", max(expected)) if expected else ("restore", 0))
        assert got["none"][unit] == ("restore", 0)
        seen.add((bool(stamps), bool(wallet)))
    assert (True, True) in seen  # a position's tick and the wallet's
    assert (False, True) in seen  # the wallet's alone
    assert with_wallet([], UnitRows.of_lists([])) == []
