"""Compare the engine's incremental state with a from-scratch recompute."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from monitor.book import NO_ROW, Book
from monitor.engine._config import EngineConfig
from monitor.engine._revalue import UnitFigures, scale
from monitor.states import REL_TOL, STATE_NAMES, classify

__all__ = ["mismatches"]


def _differ(
    cached: NDArray[np.float64], fresh: NDArray[np.float64], magnitude: NDArray[np.float64]
) -> NDArray[np.intp]:
    return np.flatnonzero(~(np.abs(cached - fresh) <= REL_TOL * magnitude))


def _unit_name(book: Book, unit: int) -> str:
    account = book.account_names[book.units.account[unit]]
    symbol = book.unit_symbol(unit)
    return f"unit {unit} ({account}{'/' + symbol if symbol else ', cross'})"


def mismatches(book: Book, fresh: UnitFigures, config: EngineConfig, limit: int) -> list[str]:
    """Lines describing each difference (at most ``limit``, then a count of the rest)."""
    found: list[str] = []
    pos, units = book.positions, book.units
    n_rows, n_units = pos.size, units.size
    row_scale = np.abs(fresh.row_upnl) + fresh.row_initial + fresh.row_maintenance
    for name, fresh_values in (
        ("upnl", fresh.row_upnl),
        ("initial", fresh.row_initial),
        ("maintenance", fresh.row_maintenance),
    ):
        cached = getattr(pos, name)[:n_rows]
        for row in _differ(cached, fresh_values, row_scale).tolist():
            found.append(
                f"position row {row} ({book.symbols[pos.instrument[row]]}): {name} "
                f"cached {cached[row]!r}, recomputed {fresh_values[row]!r}"
            )
    equity_scale = scale(fresh.collateral, fresh.gross)
    # Every figure of a unit against all of its magnitudes: a summation-order difference
    # in one of them is rounding relative to the whole unit.
    unit_scale = equity_scale + fresh.initial + fresh.maintenance
    for name in ("collateral", "upnl", "gross", "initial", "maintenance"):
        cached = getattr(units, name)[:n_units]
        fresh_values = getattr(fresh, name)
        for unit in _differ(cached, fresh_values, unit_scale).tolist():
            found.append(
                f"{_unit_name(book, unit)}: {name} cached {cached[unit]!r}, "
                f"recomputed {fresh_values[unit]!r}"
            )
    counted = units.open_positions[:n_units]
    for unit in np.flatnonzero(counted != fresh.open_positions).tolist():
        found.append(
            f"{_unit_name(book, unit)}: {counted[unit]} open positions counted, "
            f"{fresh.open_positions[unit]} found"
        )
    state = units.state[:n_units]
    judged = classify(
        state,
        fresh.collateral + fresh.upnl,
        fresh.initial,
        fresh.maintenance,
        equity_scale,
        fresh.open_positions,
        config.margin_call_ratio,
        config.hysteresis,
    )
    for unit in np.flatnonzero(judged != state).tolist():
        found.append(
            f"{_unit_name(book, unit)}: state {STATE_NAMES[state[unit]]} but its figures "
            f"say {STATE_NAMES[judged[unit]]}"
        )
    found.extend(_index_problems(book))
    if len(found) > limit:
        return [*found[:limit], f"... and {len(found) - limit} more"]
    return found


def _index_problems(book: Book) -> list[str]:
    """Holder index and unit row lists against the positions' own columns.

    Each holder must be an open row of its instrument sitting at its recorded slot, and
    each instrument must have as many holders as open rows: together, holders are
    exactly the open rows. Unit lists must reach every open row once and nothing else.
    """
    pos = book.positions
    n = pos.size
    is_open = pos.qty[:n] != 0.0
    problems = []
    open_count = np.bincount(pos.instrument[:n][is_open], minlength=len(book.symbols))
    for ix, symbol in enumerate(book.symbols):
        holders = pos.holders_of(ix)
        if holders.size != open_count[ix]:
            problems.append(
                f"holders of {symbol}: index has {holders.size} rows, {open_count[ix]} are open"
            )
        elif holders.size and not (
            np.array_equal(pos.holder_slot[holders], np.arange(holders.size))
            and bool(np.all(pos.instrument[holders] == ix))
            and bool(np.all(pos.qty[holders] != 0.0))
        ):
            problems.append(f"holders of {symbol}: a listed row is flat, elsewhere or misplaced")
    listed = np.zeros(n, dtype=np.bool_)
    head = book.units.head[: book.units.size]
    row = head[head != NO_ROW]
    while row.size:
        if listed[row].any():
            problems.append("a unit row list has a cycle or a row listed twice")
            break
        listed[row] = True
        row = pos.unit_next[row]
        row = row[row != NO_ROW]
    if not np.array_equal(listed, is_open):
        problems.append(
            f"unit row lists hold {int(listed.sum())} rows, {int(is_open.sum())} are open"
        )
    return problems
