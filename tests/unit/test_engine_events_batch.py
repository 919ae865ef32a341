"""A cycle's events are built together (``build_events``: the positions' figures of every
event in one vectorised pass). Each event's positions are what the unit alone gives, to
the bit, whatever units share the pass: cross and isolated units, linear, inverse and
option positions, collateral priced by a position's own mark."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.engine import Engine
from monitor.engine._events import build_event, build_events
from monitor.engine._risk import _exposures_of, position_risks, position_risks_of, unit_rows
from monitor.engine._warm import _linear_book, _option_book, _ticks
from monitor.schema import Transfer
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
    together = position_risks_of(book, units, rows_of)
    assert sum(len(risks) for risks in together) == sum(r.shape[0] for r in rows_of) > 0
    for unit, risks in zip(units, together, strict=True):
        assert risks == position_risks(book, unit)
    if which == 1:  # collateral priced by a position's mark: some units move with it
        counts = [r.shape[0] for r in rows_of]
        assert _exposures_of(book, units, rows_of, counts).equity_slope.any()


@pytest.mark.parametrize("which", [0, 1])
def test_events_built_together_are_those_built_one_at_a_time(which: int) -> None:
    engine = books()[which]
    book = engine.book
    units = [u for u in range(book.units.size) if unit_rows(book, u).shape[0]]
    transitions = [
        (u, MARGIN_CALL, LIQUIDATION) if k % 2 else (u, 0, MARGIN_CALL) for k, u in enumerate(units)
    ]
    together = build_events(book, transitions, lambda u, _rows: ("price", 1_000 + u), 7)
    for (unit, previous, new), event in zip(transitions, together, strict=True):
        alone = build_event(book, unit, previous, new, "price", 1_000 + unit, 7)
        assert event == alone
    assert any(event.reductions for event in together)  # severe events carry reductions
