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
from monitor.engine._revalue import refresh_units
from monitor.schema import AccountState, MarginEvent, PriceTick
from monitor.states import HEALTHY, STATE_CODES, STATE_NAMES

__all__ = ["judge_all", "restore_states", "unit_states"]

CROSS_UNIT = ""
"""The key of an account's cross unit in :class:`monitor.schema.UnitStates`."""


def unit_states(engine: Engine, account: str) -> dict[str, AccountState]:
    """The account's units that are not healthy, by ``""`` (cross) or symbol (isolated)."""
    book = engine.book
    ix = book.account_index.get(account)
    if ix is None:
        return {}
    states: dict[str, AccountState] = {}
    for unit in book.units_of(ix):
        code = int(book.units.state[unit])
        if code != HEALTHY:
            states[book.unit_symbol(unit) or CROSS_UNIT] = STATE_NAMES[code]
    return states


def restore_states(engine: Engine, states: Mapping[str, Mapping[str, AccountState]]) -> None:
    """Set every unit's state to the one in ``states`` (absent: healthy), without events."""
    book = engine.book
    table = book.units
    table.state[: table.size] = HEALTHY
    for account, units in states.items():
        ix = book.account_index.get(account)
        if ix is None:
            continue
        by_key = {book.unit_symbol(unit) or CROSS_UNIT: unit for unit in book.units_of(ix)}
        for key, state in units.items():
            unit = by_key.get(key)
            if unit is not None:
                table.state[unit] = STATE_CODES[state]


def judge_all(engine: Engine, now_ms: int) -> list[MarginEvent]:
    """Judge every unit at the current marks; one price-triggered event per transition.

    The trigger of a unit's event is the newest mark among its instruments, so a
    transition a previous run already detected from the same tick gets the same id.
    """
    book = engine.book
    n_units = book.units.size
    if n_units == 0:
        return []
    units = np.arange(n_units, dtype=np.intp)
    refresh_units(book, units)
    marks: dict[int, list[PriceTick]] = {
        ix: [PriceTick(symbol=book.symbols[ix], mark_price=float(mark), ts=int(book.mark_ts[ix]))]
        for ix, mark in enumerate(book.mark.tolist())
        if mark == mark
    }
    return engine._price_events(units, marks, {}, now_ms)
