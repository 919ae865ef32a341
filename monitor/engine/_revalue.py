"""Revaluation: position figures and margin-unit sums, incrementally and from scratch.

Both paths compute each position's figures with the same vectorised function, so
they agree exactly per position; unit sums differ only in summation order.
Figures are in the valuation asset: settle-asset amounts times the settle asset's
value (1 when an instrument settles in the valuation asset).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from monitor.book import COLLATERAL, NO_ROW, UPNL, Book
from monitor.engine._kernels import HAVE_NUMBA, revalue_linear
from monitor.engine._tick_kernels import moved_rows, revalue_option_rows, unit_sums

__all__ = [
    "UnitFigures",
    "figures",
    "recompute_units",
    "refresh_moved",
    "refresh_rows",
    "refresh_units",
    "scale",
]


def figures(
    book: Book,
    instrument: NDArray[np.intp],
    qty: NDArray[np.float64],
    entry: NDArray[np.float64],
    leverage: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(equity contribution, IM, MM) of positions in the valuation asset.

    Linear: ``uPnL = qty * contract_size * (mark - entry)``, the USDⓈ-M definition
    (Binance, "How to Calculate Unrealized PnL"), IM/MM from the instrument's model;
    inverse and option positions as ``Book.values`` (``monitor.book._contracts``) says.
    """
    upnl, initial, maintenance = book.values(instrument, qty, entry, leverage)
    settle_value = book.assets.value.take(book.settle_asset)
    if not np.all(settle_value == 1.0):
        value = settle_value.take(instrument)
        upnl *= value
        initial *= value
        maintenance *= value
    return upnl, initial, maintenance


def refresh_rows(book: Book, rows: NDArray[np.intp]) -> None:
    """Recompute the cached figures of position ``rows``.

    Half of all rows or more (a tick of an underlying with many options, or of a widely
    held instrument): every row is recomputed over contiguous slices, cheaper than
    gathering and scattering scattered rows, and exact for the others (their figures
    are a pure function of unchanged inputs).
    """
    pos = book.positions
    n = pos.size
    if HAVE_NUMBA and book.contracts.has_options and rows.shape[0]:
        if rows.shape[0] * 2 >= n:  # every option row in one sequential pass; the rest:
            rows = _revalue_option_rows(book, None)  # every row of another kind
        else:
            rows = rows[_revalue_option_rows(book, rows)]  # the rest: other kinds
        if rows.shape[0] == 0:
            return
    _refresh_with_numpy(book, rows)


def _refresh_with_numpy(book: Book, rows: NDArray[np.intp]) -> None:
    """``refresh_rows`` by ``figures`` (every kind), over every row when ``rows`` are half."""
    pos = book.positions
    n = pos.size
    if rows.shape[0] * 2 >= n:
        upnl, initial, maintenance = figures(
            book, pos.instrument[:n], pos.qty[:n], pos.entry[:n], pos.leverage[:n]
        )
        block = pos.figures[:n]
        block[:, 0], block[:, 1], block[:, 2] = upnl, initial, maintenance
        return
    upnl, initial, maintenance = figures(
        book, pos.instrument[rows], pos.qty[rows], pos.entry[rows], pos.leverage[rows]
    )
    pos.figures[rows] = np.column_stack((upnl, initial, maintenance))


def refresh_moved(book: Book, instruments: NDArray[np.intp]) -> NDArray[np.intp]:
    """Recompute the figures of the open rows of ``instruments`` (whose marks moved);
    return the units those rows count in (repeats possible, unsorted).

    When they hold a quarter of the rows or more in a book with options (a tick of an
    underlying with many options), one sequential pass over every row finds and revalues them
    (``monitor.engine._tick_kernels.moved_rows``): gathering the holder lists and the
    units of 500,000 scattered rows cost more than the arithmetic.
    """
    pos = book.positions
    dense = int(pos.holder_count[instruments].sum()) * 4 >= pos.size  # a quarter or more
    if not (HAVE_NUMBA and book.contracts.has_options and dense):
        parts = [pos.holders_of(ix) for ix in instruments.tolist()]
        rows = np.concatenate(parts) if parts else np.empty(0, dtype=np.intp)
        refresh_rows(book, rows)
        units: NDArray[np.intp] = pos.unit[rows]
        return units
    n = pos.size
    moved = np.zeros(len(book.symbols), dtype=np.bool_)
    moved[instruments] = True
    touched = np.zeros(book.units.size, dtype=np.bool_)
    others = moved_rows(
        moved,
        pos.instrument[:n],
        pos.qty,
        pos.unit,
        book.contracts.kind,
        book.models.contract_size,
        book.mark,
        book.options.short_initial,
        book.options.short_maintenance,
        book.assets.value.take(book.settle_asset),
        pos.figures,
        touched,
    )
    if others.size:  # futures among the moved instruments: not options, numpy's path
        _refresh_with_numpy(book, others)
    return np.flatnonzero(touched)


def _revalue_option_rows(book: Book, rows: NDArray[np.intp] | None) -> NDArray[np.intp]:
    """Write the figures of the option rows among ``rows`` (None: all) in one fused pass
    (``monitor.engine._tick_kernels``); return where the other rows are in ``rows`` (None:
    the other rows)."""
    pos, options = book.positions, book.options
    n = pos.size
    return revalue_option_rows(
        rows,
        pos.instrument[:n],
        pos.qty,
        book.contracts.kind,
        book.models.contract_size,
        book.mark,
        options.short_initial,
        options.short_maintenance,
        book.assets.value.take(book.settle_asset),
        pos.figures,
    )


def _collateral(book: Book, units: NDArray[np.intp]) -> NDArray[np.float64]:
    """Collateral value of units: wallet after haircuts, or an isolated unit's margin."""
    table = book.units
    value = np.empty(units.shape[0])
    rows = table.row[units]
    cross = rows == NO_ROW
    value[cross] = book.assets.wallet_value(book.accounts.balance[table.account[units[cross]]])
    if not cross.all():
        iso = rows[~cross]
        settle = book.settle_asset[book.positions.instrument[iso]]
        value[~cross] = book.positions.isolated_margin[iso] * book.assets.value[settle]
    return value


def refresh_units(book: Book, units: NDArray[np.intp], with_collateral: bool = True) -> None:
    """Recompute the sums of ``units`` (unique ids) from their positions' cached figures.

    Few units: walk their row lists, all at once (one vectorised step per position of
    the largest unit). Half of all units or more: one bincount pass over every open row,
    about three times cheaper there. Either way the sums are exact, never adjusted by
    deltas. ``with_collateral=False`` keeps the collateral value (a mark moved, no
    wallet or collateral price did).
    """
    table = book.units
    n = units.shape[0]
    if n * 2 >= table.size:
        _refresh_most_units(book, units)
    else:
        _walk_unit_rows(book, units)
    if with_collateral:
        table.figures[units, COLLATERAL] = _collateral(book, units)


def _refresh_most_units(book: Book, units: NDArray[np.intp]) -> None:
    """Most units touched (a tick of a widely held instrument): one bincount pass over
    every open row's cached figures is cheaper than walking the row lists."""
    pos, table = book.positions, book.units
    n_rows, n_units = pos.size, table.size
    if HAVE_NUMBA:  # one fused pass (monitor.engine._tick_kernels), same sums
        sums = unit_sums(pos.unit[:n_rows], pos.qty[:n_rows], pos.figures[:n_rows], n_units)
        table.figures[units, UPNL:] = sums[units]
        return
    unit = pos.unit[:n_rows]
    values = pos.figures[:n_rows]
    is_open = pos.qty[:n_rows] != 0.0
    if not is_open.all():
        unit, values = unit[is_open], values[is_open]
    sums = np.empty((units.shape[0], 4))
    for k in range(3):
        sums[:, k] = _sum_by(unit, values[:, k], n_units)[units]
    sums[:, 3] = _sum_by(unit, np.abs(values[:, 0]), n_units)[units]
    table.figures[units, UPNL:] = sums


def _walk_unit_rows(book: Book, units: NDArray[np.intp]) -> None:
    """Sum the cached figures of ``units`` along their row lists, all lists at once."""
    pos, table = book.positions, book.units
    n = units.shape[0]
    sums = np.zeros((n, 4))  # upnl, initial, maintenance, gross: figures[:, UPNL:]
    slot = np.arange(n)
    row = table.head[units]
    live = row != NO_ROW
    slot, row = slot[live], row[live]
    while row.shape[0]:
        values = pos.figures[row]
        sums[slot, :3] += values
        sums[slot, 3] += np.abs(values[:, 0])
        row = pos.unit_next[row]
        live = row != NO_ROW
        if not live.all():
            slot, row = slot[live], row[live]
    table.figures[units, UPNL:] = sums


class UnitFigures(NamedTuple):
    """Every unit's figures and every position's, computed from scratch."""

    collateral: NDArray[np.float64]
    upnl: NDArray[np.float64]
    gross: NDArray[np.float64]
    initial: NDArray[np.float64]
    maintenance: NDArray[np.float64]
    open_positions: NDArray[np.intp]
    row_columns: NDArray[np.float64]  # [4, rows]: upnl, initial, maintenance, |upnl|

    @property
    def row_upnl(self) -> NDArray[np.float64]:
        column: NDArray[np.float64] = self.row_columns[0]
        return column

    @property
    def row_initial(self) -> NDArray[np.float64]:
        column: NDArray[np.float64] = self.row_columns[1]
        return column

    @property
    def row_maintenance(self) -> NDArray[np.float64]:
        column: NDArray[np.float64] = self.row_columns[2]
        return column


# Positions valued per pass in a full recompute: the temporaries stay in cache.
_CHUNK = 1 << 14


def recompute_units(
    book: Book, count_positions: bool = False, write_rows: bool = False
) -> UnitFigures:
    """Every position's and unit's figures from the book's positions, wallets and prices.

    ``open_positions`` is recounted only with ``count_positions`` (for verification);
    otherwise it is the maintained count. ``write_rows`` also stores each position's
    figures in the book (the full recompute), while they are still in cache.
    """
    pos, table = book.positions, book.units
    n_rows, n_units = pos.size, table.size
    if HAVE_NUMBA and book.contracts.linear_only and n_rows:
        return _recompute_fused(book, count_positions, write_rows)
    columns = np.empty((4, n_rows))
    for start in range(0, n_rows, _CHUNK):
        part = slice(start, min(n_rows, start + _CHUNK))
        upnl, initial, maintenance = figures(
            book, pos.instrument[part], pos.qty[part], pos.entry[part], pos.leverage[part]
        )
        columns[0, part], columns[1, part], columns[2, part] = upnl, initial, maintenance
        np.abs(upnl, out=columns[3, part])
        if write_rows:
            rows = pos.figures[part]
            rows[:, 0], rows[:, 1], rows[:, 2] = upnl, initial, maintenance
    unit = pos.unit[:n_rows]
    is_open = pos.qty[:n_rows] != 0.0
    weights = columns
    if not is_open.all():
        unit = unit[is_open]
        weights = columns[:, is_open]
    upnl_sum, initial_sum, maintenance_sum, gross = (
        _sum_by(unit, weights[k], n_units) for k in range(4)
    )
    if count_positions:
        counts = np.bincount(unit, minlength=n_units).astype(np.intp)
    else:
        counts = table.open_positions[:n_units].copy()
    collateral = _all_collateral(book)
    return UnitFigures(collateral, upnl_sum, gross, initial_sum, maintenance_sum, counts, columns)


def _recompute_fused(book: Book, count_positions: bool, write_rows: bool) -> UnitFigures:
    """``recompute_units`` for a book of linear contracts, in one fused pass
    (``monitor.engine._kernels``)."""
    pos, table = book.positions, book.units
    n_rows, n_units = pos.size, table.size
    layout = book.models.layout
    columns = np.empty((4, n_rows))
    sums = np.zeros((n_units, 4))
    revalue_linear(
        pos.instrument[:n_rows],
        pos.qty[:n_rows],
        pos.entry[:n_rows],
        pos.leverage[:n_rows],
        pos.unit[:n_rows],
        book.mark,
        layout.contract_size,
        book.assets.value.take(book.settle_asset),
        layout.n_tiers,
        layout.floors,
        layout.mmr,
        layout.imr,
        layout.cum,
        layout.mm_slope,
        layout.im_slope,
        columns,
        sums,
    )
    if write_rows:
        pos.figures[:n_rows] = columns[:3].T
    if count_positions:
        is_open = pos.qty[:n_rows] != 0.0
        counts = np.bincount(pos.unit[:n_rows][is_open], minlength=n_units).astype(np.intp)
    else:
        counts = table.open_positions[:n_units].copy()
    return UnitFigures(
        _all_collateral(book),
        np.ascontiguousarray(sums[:, 0]),
        np.ascontiguousarray(sums[:, 3]),
        np.ascontiguousarray(sums[:, 1]),
        np.ascontiguousarray(sums[:, 2]),
        counts,
        columns,
    )


def _all_collateral(book: Book) -> NDArray[np.float64]:
    table = book.units
    n_units = table.size
    cross = table.row[:n_units] == NO_ROW
    if cross.all():  # every unit is an account's cross unit, in account order
        balances = book.accounts.balance[table.account[:n_units]]
        return book.assets.wallet_value(balances)
    return _collateral(book, np.arange(n_units))


def _sum_by(
    unit: NDArray[np.intp], weights: NDArray[np.float64], n_units: int
) -> NDArray[np.float64]:
    return np.bincount(unit, weights, minlength=n_units).astype(np.float64, copy=False)


def scale(collateral: NDArray[np.float64], gross: NDArray[np.float64]) -> NDArray[np.float64]:
    """The magnitude of equity's terms, which its rounding is measured against:
    ``|collateral| + sum|uPnL|`` (see ``monitor.states.slack``)."""
    result: NDArray[np.float64] = np.abs(collateral) + gross
    return result
