"""Compare the engine's incremental state with a from-scratch recompute, in slices.

A sweep checks the book a slice of margin units at a time, so the service can run one
slice between cycles and a sweep never stalls the loop for long (``VerifySweep.step``);
``Engine.verify`` runs every slice at once. Each slice is checked against the book as
it is at that step: the units' row lists (each listed row open, belonging to the unit,
as many as the unit counts), every listed position's figures recomputed from scratch,
the units' sums, collateral and state from those; then an equal share of the
instruments' holder lists (by listed rows, so one instrument's long list is spread over
steps). The last step checks what spans the book: as many holders and listed rows as
open positions (which, with the per-slice checks, makes holders and listed rows exactly
the open rows), the portfolio units' requirements against a fresh computation, and each
option instrument's mark against a fresh pricing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from monitor.book import (
    COLLATERAL,
    GROSS,
    HOLDER_BLOCK,
    INITIAL,
    MAINTENANCE,
    NO_ROW,
    UPNL,
    Book,
    Index,
)
from monitor.engine import _kernels
from monitor.engine._judge import judge_range
from monitor.engine._options import option_mismatches
from monitor.engine._revalue import figures, unit_collateral_of
from monitor.engine._verify_kernels import BAD_CYCLE, BAD_LISTED, check_unit_rows
from monitor.engine._width_kernels import revalue_linear
from monitor.states import REL_TOL, STATE_NAMES, classify

if TYPE_CHECKING:
    from monitor.engine._engine import Engine

__all__ = ["VerifySweep"]

_NAMES = ("collateral", "upnl", "initial", "maintenance", "gross")


def _differ(
    cached: NDArray[np.float64], fresh: NDArray[np.float64], magnitude: NDArray[np.float64]
) -> Index:
    return np.flatnonzero(~(np.abs(cached - fresh) <= REL_TOL * magnitude))


def _unit_name(book: Book, unit: int) -> str:
    account = book.account_names[book.units.account[unit]]
    symbol = book.unit_symbol(unit)
    return f"unit {unit} ({account}{'/' + symbol if symbol else ', cross'})"


class VerifySweep:
    """One pass of the consistency check over the engine's book, in ``steps()`` slices.

    Call :meth:`step` until it returns True, between cycles; ``problems`` then holds at
    most ``limit`` lines (then a count of the rest), empty when consistent.
    """

    def __init__(self, engine: Engine, units_per_step: int, limit: int) -> None:
        if units_per_step < 1:
            raise ValueError("units_per_step must be at least 1")
        self._engine = engine
        self._limit = limit
        self._found: list[str] = []
        self._uncounted = 0  # problems the compiled walk counted but had no room to record
        book = engine.book
        self._units_per_step = units_per_step
        self._steps = max(1, -(-book.units.size // units_per_step))
        # The holder lists are checked in equal shares of listed rows, not of instruments:
        # a book of a few instruments has lists of 100,000s of rows each.
        listed = int(book.positions.holders.count.sum())
        self._holders_per_step = max(1, -(-listed // self._steps))
        self._holder_at = (0, 0)  # the instrument and slot the next share starts at
        self._holders_reported: set[int] = set()  # instruments found wrong (once each)
        self._next = 0
        self.done = False

    @property
    def engine(self) -> Engine:
        """The engine whose book this sweep checks."""
        return self._engine

    @property
    def steps(self) -> int:
        """How many calls of :meth:`step` the sweep takes (fixed when it starts)."""
        return self._steps

    @property
    def problems(self) -> list[str]:
        found, limit = self._found, self._limit
        total = len(found) + self._uncounted
        if total > limit:
            return [*found[:limit], f"... and {total - limit} more"]
        return list(found)

    def step(self) -> bool:
        """Check the next slice; True once the sweep is complete."""
        if self.done:
            return True
        engine = self._engine
        engine._refresh_stale_rows()
        book = engine.book
        k = self._next
        last = k == self._steps - 1
        start = k * self._units_per_step
        stop = book.units.size if last else min(book.units.size, start + self._units_per_step)
        if start < stop:
            units = np.arange(start, stop, dtype=np.intp)
            # With price bands, figures are those of the marks each unit was last judged
            # at: revalue first, so what is checked is that its state is still right.
            engine.bring_up_to_date(units)
            self._check_units(units)
        self._check_holders(book, last)
        if last:
            self._found.extend(_totals(book))
            self._found.extend(self._portfolio_problems())
            self._found.extend(option_mismatches(book, self._limit + 1))
            self.done = True
        self._next = k + 1
        return self.done

    # ------------------------------------------------------------------ one slice of holders

    def _check_holders(self, book: Book, last: bool) -> None:
        """The next ``_holders_per_step`` listed holders, from where the last step
        stopped, across instruments; at the last step, all that are left. A list that
        shrank below where the walk stands is done."""
        counts = book.positions.holders.count
        ix, slot = self._holder_at
        budget = self._holders_per_step
        while ix < len(book.symbols) and (last or budget > 0):
            count = int(counts[ix])
            stop = count if last else min(count, slot + budget)
            if slot < stop:
                budget -= stop - slot
                if ix not in self._holders_reported:
                    problem = _holder_problem(book, ix, slot, stop)
                    if problem:
                        self._holders_reported.add(ix)
                        self._found.append(problem)
            ix, slot = (ix + 1, 0) if stop >= count else (ix, stop)
        self._holder_at = (ix, slot)

    # ------------------------------------------------------------------ one slice of units

    def _check_units(self, units: Index) -> None:
        book = self._engine.book
        if _kernels.ENABLED and book.contracts.linear_only:
            sums, listed = self._walk_compiled(units)
        else:
            slots, rows = _listed_rows(self._found, book, units)
            fresh_rows, sums = _fresh(book, units, slots, rows)
            self._row_problems(rows, fresh_rows)
            listed = np.bincount(slots, minlength=units.shape[0])
        sums[:, COLLATERAL] = unit_collateral_of(book, units)
        table = book.units
        cached = table.figures[units]
        # A portfolio unit's requirements are checked against a fresh portfolio
        # computation in the last step; here they are taken as cached.
        portfolio = self._engine.portfolio_units(units)
        sums[portfolio, INITIAL] = cached[portfolio, INITIAL]
        sums[portfolio, MAINTENANCE] = cached[portfolio, MAINTENANCE]
        equity_scale = np.abs(sums[:, COLLATERAL]) + sums[:, GROSS]
        # Every figure of a unit against all of its magnitudes: a summation-order
        # difference in one of them is rounding relative to the whole unit.
        unit_scale = equity_scale + sums[:, INITIAL] + sums[:, MAINTENANCE]
        for column, name in enumerate(_NAMES):
            for k in _differ(cached[:, column], sums[:, column], unit_scale).tolist():
                self._found.append(
                    f"{_unit_name(book, int(units[k]))}: {name} cached "
                    f"{float(cached[k, column])!r}, recomputed {float(sums[k, column])!r}"
                )
        counted = table.open_positions[units]
        for k in np.flatnonzero(listed != counted).tolist():
            self._found.append(
                f"unit row lists: {_unit_name(book, int(units[k]))} lists {listed[k]} rows, "
                f"{counted[k]} open positions counted"
            )
        self._found.extend(_state_problems(self._engine, units, sums, listed))

    def _walk_compiled(self, units: Index) -> tuple[NDArray[np.float64], Index]:
        """The units' fresh sums and listed rows, and the rows' problems, in one compiled
        walk (``monitor.engine._verify_kernels``)."""
        book = self._engine.book
        pos, layout = book.positions, book.models.layout
        sums = np.zeros((units.shape[0], 5))
        listed = np.zeros(units.shape[0], dtype=np.intp)
        capacity = self._limit + 1
        bad_at = np.empty(capacity, dtype=np.intp)
        bad_kind = np.empty(capacity, dtype=np.intp)
        bad_fresh = np.empty(capacity)
        bad_unit = np.empty(capacity, dtype=np.intp)
        found = check_unit_rows(
            int(units[0]), int(units[-1]) + 1, book.units.head, pos.unit_next, pos.unit,
            pos.instrument, pos.qty, pos.entry, pos.leverage, book.mark, layout.contract_size,
            book.assets.value.take(book.settle_asset), layout.floors, layout.mmr, layout.imr,
            layout.cum, layout.mm_slope, layout.im_slope, pos.figures, sums, listed, bad_at,
            bad_kind, bad_fresh, bad_unit,
        )  # fmt: skip
        recorded = min(found, capacity)
        self._uncounted += found - recorded
        names = ("upnl", "initial", "maintenance")
        cycle = False
        for at, kind, fresh, unit in zip(
            bad_at[:recorded].tolist(),
            bad_kind[:recorded].tolist(),
            bad_fresh[:recorded].tolist(),
            bad_unit[:recorded].tolist(),
            strict=True,
        ):
            if kind == BAD_CYCLE:
                cycle = True
            elif kind == BAD_LISTED:
                owner = _unit_name(book, unit)
                self._found.append(
                    f"unit row lists: row {at} is on the list of {owner} "
                    f"but is flat or in unit {int(pos.unit[at])}"
                )
            else:
                self._found.append(
                    f"position row {at} ({book.symbols[pos.instrument[at]]}): {names[kind]} "
                    f"cached {float(pos.figures[at, kind])!r}, recomputed {fresh!r}"
                )
        if cycle:
            self._found.append("a unit row list has a cycle or a row listed twice")
        return sums, listed

    def _row_problems(self, rows: Index, fresh: NDArray[np.float64]) -> None:
        book = self._engine.book
        cached = book.positions.figures[rows]
        row_scale = np.abs(fresh[:, 0]) + fresh[:, 1] + fresh[:, 2]
        for column, name in enumerate(("upnl", "initial", "maintenance")):
            for k in _differ(cached[:, column], fresh[:, column], row_scale).tolist():
                row = int(rows[k])
                self._found.append(
                    f"position row {row} ({book.symbols[book.positions.instrument[row]]}): "
                    f"{name} cached {float(cached[k, column])!r}, "
                    f"recomputed {float(fresh[k, column])!r}"
                )

    def _portfolio_problems(self) -> list[str]:
        engine = self._engine
        book = engine.book
        units, fresh = engine.portfolio_from_scratch()
        if units.size == 0:
            return []
        found = []
        table = book.units
        cached = table.figures[units]
        scale = np.abs(cached[:, COLLATERAL]) + cached[:, GROSS] + fresh[:, 0] + fresh[:, 1]
        for column, name, k_fresh in ((INITIAL, "initial", 0), (MAINTENANCE, "maintenance", 1)):
            for k in _differ(cached[:, column], fresh[:, k_fresh], scale).tolist():
                found.append(
                    f"{_unit_name(book, int(units[k]))}: {name} cached "
                    f"{float(cached[k, column])!r}, recomputed {float(fresh[k, k_fresh])!r}"
                )
        sums = cached.copy()
        sums[:, INITIAL], sums[:, MAINTENANCE] = fresh[:, 0], fresh[:, 1]
        found.extend(_state_problems(engine, units, sums, table.open_positions[units]))
        return found


def _listed_rows(found: list[str], book: Book, units: Index) -> tuple[Index, Index]:
    """(slot in ``units``, row) of every row on the units' row lists, walking all lists
    at once; a listed row that is flat or belongs to another unit, or a list longer than
    one row per instrument (a cycle), is a problem."""
    pos = book.positions
    slot = np.arange(units.shape[0], dtype=np.intp)
    row = book.units.head[units]
    live = row != NO_ROW
    slot, row = slot[live], row[live]
    slots, rows = [], []
    for _ in range(len(book.symbols) + 1):  # a unit holds one row per instrument at most
        if row.shape[0] == 0:
            break
        slots.append(slot)
        rows.append(row)
        row = pos.unit_next[row]
        live = row != NO_ROW
        slot, row = slot[live], row[live]
    if row.shape[0]:
        found.append("a unit row list has a cycle or a row listed twice")
    if not rows:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    slot, row = np.concatenate(slots), np.concatenate(rows)
    wrong = (pos.unit[row] != units[slot]) | (pos.qty[row] == 0.0)
    for k in np.flatnonzero(wrong).tolist():
        owner = _unit_name(book, int(units[slot[k]]))
        found.append(
            f"unit row lists: row {int(row[k])} is on the list of {owner} "
            f"but is flat or in unit {int(pos.unit[row[k]])}"
        )
    return slot, row


def _fresh(
    book: Book, units: Index, slots: Index, rows: Index
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Figures of ``rows`` from scratch ([rows, 3]) and the units' sums ([units, 5], the
    columns of ``UnitTable.figures``; collateral left 0)."""
    pos = book.positions
    instrument, qty = pos.instrument[rows], pos.qty[rows]
    entry, leverage = pos.entry[rows], pos.leverage[rows]
    fresh = np.empty((rows.shape[0], 3))
    sums = np.zeros((units.shape[0], 5))
    if _kernels.ENABLED and book.contracts.linear_only:
        layout = book.models.layout
        revalue_linear(
            instrument, qty, entry, leverage, slots, book.mark, layout.contract_size,
            book.assets.value.take(book.settle_asset), layout.n_tiers, layout.floors,
            layout.mmr, layout.imr, layout.cum, layout.mm_slope, layout.im_slope, fresh, sums,
        )  # fmt: skip
        return fresh, sums
    upnl, initial, maintenance = figures(book, instrument, qty, entry, leverage)
    fresh[:, 0], fresh[:, 1], fresh[:, 2] = upnl, initial, maintenance
    n = units.shape[0]
    for column, values in ((UPNL, upnl), (INITIAL, initial), (MAINTENANCE, maintenance)):
        sums[:, column] = np.bincount(slots, values, minlength=n)
    sums[:, GROSS] = np.bincount(slots, np.abs(upnl), minlength=n)
    return fresh, sums


def _state_problems(
    engine: Engine,
    units: Index,
    sums: NDArray[np.float64],
    open_positions: Index,
) -> list[str]:
    """Units whose state is not what their fresh figures say (no pending transition)."""
    book, config = engine.book, engine.config
    state = book.units.state[units]
    if _kernels.ENABLED:  # the state machine's kernel, on copies: a dry run
        n = units.shape[0]
        changed = np.empty(n, dtype=np.intp)
        count = judge_range(
            0, n, state.copy(), np.zeros(n, dtype=np.int64), np.ascontiguousarray(sums),
            np.ascontiguousarray(open_positions, dtype=np.intp), config.margin_call_ratio,
            config.hysteresis, changed, np.empty(n, dtype=np.int8),
        )  # fmt: skip
        if count == 0:  # the common case; otherwise classify names the states below
            return []
    judged = classify(
        state,
        sums[:, COLLATERAL] + sums[:, UPNL],
        sums[:, INITIAL],
        sums[:, MAINTENANCE],
        np.abs(sums[:, COLLATERAL]) + sums[:, GROSS],
        open_positions,
        config.margin_call_ratio,
        config.hysteresis,
    )
    return [
        f"{_unit_name(book, int(units[k]))}: state {STATE_NAMES[state[k]]} but its figures "
        f"say {STATE_NAMES[judged[k]]}"
        for k in np.flatnonzero(judged != state).tolist()
    ]


def _holder_problem(book: Book, ix: int, first: int, stop: int) -> str:
    """Whether slots ``first:stop`` of the instrument's holder list each hold an open row
    of it that knows its slot, under a band summary that admits the row's band; what is
    wrong, or empty."""
    pos = book.positions
    listed = pos.holders_of(ix)[first:stop]
    # Read the rows in increasing order (memory order): a slot is its place in the list.
    order = np.argsort(listed)
    rows = listed[order]
    if not (
        np.array_equal(pos.holder_slot[rows], first + order)
        and bool(np.all(pos.instrument[rows] == ix))
        and bool(np.all(pos.qty[rows] != 0.0))
    ):
        return f"holders of {book.symbols[ix]}: a listed row is flat, elsewhere or misplaced"
    block = (int(pos.holders.start[ix]) + np.arange(first, stop)) // HOLDER_BLOCK
    holders = pos.holders
    if not (
        np.all(holders.block_low[block] >= pos.band_low[listed])
        and np.all(holders.block_high[block] <= pos.band_high[listed])
    ):
        return (
            f"holders of {book.symbols[ix]}: a block's band summary hides a row's band "
            "(a tick could skip it)"
        )
    if not np.all(book.units.unbanded[pos.unit[listed]] | (pos.band_low[listed] > -np.inf)):
        return (
            f"holders of {book.symbols[ix]}: a row's band is wide open but its unit is not "
            "flagged unbanded (a tick could skip it)"
        )
    return ""


def _totals(book: Book) -> list[str]:
    """As many holders, and as many rows on unit lists, as open positions."""
    pos = book.positions
    n = pos.size
    is_open = pos.qty[:n] != 0.0
    open_rows = int(np.count_nonzero(is_open))
    problems = []
    if int(pos.holder_count.sum()) != open_rows:
        per_instrument = np.bincount(pos.instrument[:n][is_open], minlength=len(book.symbols))
        for ix in np.flatnonzero(per_instrument != pos.holder_count).tolist():
            problems.append(
                f"holders of {book.symbols[ix]}: index has {pos.holder_count[ix]} rows, "
                f"{per_instrument[ix]} are open"
            )
    listed = int(book.units.open_positions[: book.units.size].sum())
    if listed != open_rows:
        problems.append(f"unit row lists count {listed} open positions, {open_rows} are open")
    unbanded = int(np.count_nonzero(book.units.unbanded[: book.units.size]))
    if unbanded != book.units.unbanded_count:
        problems.append(
            f"{unbanded} units are flagged unbanded, the count says {book.units.unbanded_count}"
        )
    ids = book.units.unbanded_ids
    if ids is not None and not np.array_equal(
        ids, np.flatnonzero(book.units.unbanded[: book.units.size])
    ):
        problems.append("the list of unbanded units is not the units flagged unbanded")
    return problems
