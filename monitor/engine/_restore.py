"""Hand margin states over between monitor runs: export, restore, and judge afresh.

A restarted monitor rebuilds its book by replaying the ledger silently, then sets
each unit's state to what the previous run last published (``liqmon-state``), then
judges every unit at the current prices: only transitions that the previous run
did not publish come out as events.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from monitor.engine._engine import Engine
from monitor.engine._records import CROSS_UNIT, account_record
from monitor.engine._revalue import refresh_units, revalue_book
from monitor.schema import MarginEvent, PriceTick, UnitStates
from monitor.states import HEALTHY, STATE_CODES

__all__ = ["judge_all", "restore_states", "unit_record"]


def unit_record(engine: Engine, account: str, ts: int) -> UnitStates:
    """The changelog record of ``account``: its units that are not healthy, and the
    transition count of every unit that has had one, by ``""`` (cross) or symbol."""
    return account_record(engine.book, account, ts)


def restore_states(engine: Engine, records: Mapping[str, UnitStates]) -> None:
    """Set every unit's state and transition count to those in ``records`` (absent:
    healthy, none), without events."""
    book = engine.book
    table = book.units
    table.state[: table.size] = HEALTHY
    table.transitions[: table.size] = 0
    for account, record in records.items():
        ix = book.account_index.get(account)
        if ix is None:
            continue
        by_key = {book.unit_symbol(unit) or CROSS_UNIT: unit for unit in book.units_of(ix)}
        for key, state in record.units.items():
            unit = by_key.get(key)
            if unit is not None:
                table.state[unit] = STATE_CODES[state]
        for key, count in record.transitions.items():
            unit = by_key.get(key)
            if unit is not None:
                table.transitions[unit] = count


def judge_all(engine: Engine, now_ms: int) -> list[MarginEvent]:
    """Judge every unit at the current marks; one price-triggered event per transition.

    The trigger of a unit's event is the newest mark among its instruments. Every event
    is ``collapsed``: it goes from the last published state to the current one.
    """
    book = engine.book
    n_units = book.units.size
    if n_units == 0:
        return []
    units = np.arange(n_units, dtype=np.intp)
    if engine.banded:  # rows may be at the marks their units were last judged at
        revalue_book(book)
    else:
        refresh_units(book, units)
    if engine.portfolio.has_accounts(book):  # else no unit to set (see full_recompute)
        engine.portfolio.recompute_all(book)
    marks: dict[int, list[PriceTick]] = {
        ix: [PriceTick(symbol=book.symbols[ix], mark_price=float(mark), ts=int(book.mark_ts[ix]))]
        for ix, mark in enumerate(book.mark.tolist())
        if mark == mark
    }
    events = engine._price_events(units, marks, {}, now_ms, collapsed=True)
    engine._band(None)
    return events
