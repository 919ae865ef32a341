"""Revaluation: position figures and margin-unit sums, incrementally and from scratch.

Both paths compute each position's figures with the same vectorised function, so
they agree exactly per position; unit sums differ only in summation order.
Figures are in the valuation asset: settle-asset amounts times the settle asset's
value (1 when an instrument settles in the valuation asset).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from monitor.book import COLLATERAL, UPNL, Book, Index
from monitor.engine import _kernels
from monitor.engine._tick_kernels import (
    moved_rows,
    revalue_option_rows,
    touched_units,
    unit_sums_into,
)
from monitor.engine._unit_kernels import (
    reset_units,
    reset_units_reference,
    sum_unit_rows,
    sum_unit_rows_reference,
    unit_collateral,
    unit_collateral_reference,
)
from monitor.engine._width_kernels import revalue_linear, revalue_rows

__all__ = [
    "figures",
    "refresh_moved",
    "refresh_rows",
    "refresh_units",
    "revalue_book",
    "scale",
    "unique_ids",
    "unit_collateral_of",
]


def figures(
    book: Book,
    instrument: Index,
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


def refresh_rows(book: Book, rows: Index) -> None:
    """Recompute the cached figures of position ``rows``.

    Half of all rows or more (a tick of an underlying with many options, or of a widely
    held instrument): every row is recomputed over contiguous slices, cheaper than
    gathering and scattering scattered rows, and exact for the others (their figures
    are a pure function of unchanged inputs).
    """
    pos = book.positions
    n = pos.size
    if _kernels.ENABLED and book.contracts.linear_only:
        if n > rows.shape[0] and rows.shape[0] * 2 >= n:  # in row order: scattered rows
            rows = np.arange(n, dtype=np.intp)  # cost ~7x per row
        layout = book.models.layout
        revalue_rows(
            rows, pos.instrument, pos.qty, pos.entry, pos.leverage, book.mark,
            layout.contract_size, book.assets.value.take(book.settle_asset), layout.n_tiers,
            layout.floors, layout.mmr, layout.imr, layout.cum, layout.mm_slope,
            layout.im_slope, pos.figures,
        )  # fmt: skip
        return
    if _kernels.ENABLED and book.contracts.has_options and rows.shape[0]:
        if rows.shape[0] * 2 >= n:  # every option row in one sequential pass; the rest:
            rows = _revalue_option_rows(book, None)  # every row of another kind
        else:
            rows = rows[_revalue_option_rows(book, rows)]  # the rest: other kinds
        if rows.shape[0] == 0:
            return
    _refresh_with_numpy(book, rows)


def _refresh_with_numpy(book: Book, rows: Index) -> None:
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


def refresh_moved(book: Book, instruments: Index) -> Index:
    """Recompute the figures of the open rows of ``instruments`` (whose marks moved);
    return the units those rows count in (repeats possible, unsorted).

    When they hold a quarter of the rows or more in a book with options (a tick of an
    underlying with many options), one sequential pass over every row finds and revalues them
    (``monitor.engine._tick_kernels.moved_rows``): gathering the holder lists and the
    units of 500,000 scattered rows cost more than the arithmetic.
    """
    pos = book.positions
    held = int(pos.holder_count[instruments].sum())
    if _kernels.ENABLED and book.contracts.linear_only and held * 2 >= pos.size:
        # Half of the rows or more (every instrument ticked in one cycle): revalue every
        # row in order and find the moved ones by a mask, not by gathering holder lists.
        n = pos.size
        refresh_rows(book, np.arange(n, dtype=np.intp))
        ticked = np.zeros(len(book.symbols), dtype=np.bool_)
        ticked[instruments] = True
        return touched_units(ticked, pos.instrument[:n], pos.qty[:n], pos.unit[:n],
                             book.units.size)  # fmt: skip
    dense = held * 4 >= pos.size  # a quarter or more
    if not (_kernels.ENABLED and book.contracts.has_options and dense):
        parts = [pos.holders_of(ix) for ix in instruments.tolist()]
        rows = np.concatenate(parts) if parts else np.empty(0, dtype=np.intp)
        refresh_rows(book, rows)
        units: Index = pos.unit[rows]
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


def _revalue_option_rows(book: Book, rows: Index | None) -> Index:
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


def unit_collateral_of(book: Book, units: Index) -> NDArray[np.float64]:
    """Collateral value of units: wallet after haircuts, or an isolated unit's margin
    (``monitor.engine._kernels.unit_collateral``; the full recompute uses the same)."""
    table, assets = book.units, book.assets
    value = np.empty(units.shape[0])
    kernel = unit_collateral if _kernels.ENABLED else unit_collateral_reference
    kernel(
        table.row[units],
        table.account[units],
        book.accounts.balance,
        assets.value,
        assets.haircut,
        book.positions.isolated_margin,
        book.positions.instrument,
        assets.value.take(book.settle_asset),
        value,
    )
    return value


def refresh_units(book: Book, units: Index, with_collateral: bool = True) -> None:
    """Recompute the sums of ``units`` (unique ids) from their positions' cached figures.

    Few units: walk each unit's row list (``sum_unit_rows``, or its numpy reference: one
    vectorised step per position of the largest unit). Half of all units or more: one
    sequential pass over every open row (``unit_sums_into``, or numpy's bincount), cheaper than
    scattered row lists there. Either way the sums are exact, never adjusted by deltas.
    ``with_collateral=False`` keeps the collateral value (a mark moved, no
    wallet or collateral price did).
    """
    table = book.units
    n = units.shape[0]
    if _kernels.ENABLED and n * 2 < table.size:
        sum_unit_rows(units, table.head, book.positions.unit_next, book.positions.figures,
                      table.figures)  # fmt: skip
    elif n * 2 >= table.size:
        _refresh_most_units(book, units)
    else:
        sum_unit_rows_reference(
            units, table.head, book.positions.unit_next, book.positions.figures, table.figures
        )
    if with_collateral:
        table.figures[units, COLLATERAL] = unit_collateral_of(book, units)


def _refresh_most_units(book: Book, units: Index) -> None:
    """Most units touched (a tick of a widely held instrument): one bincount pass over
    every open row's cached figures is cheaper than walking the row lists."""
    pos, table = book.positions, book.units
    n_rows, n_units = pos.size, table.size
    if _kernels.ENABLED:  # one fused pass (monitor.engine._tick_kernels), same sums
        unit_sums_into(units, pos.unit[:n_rows], pos.qty[:n_rows], pos.figures[:n_rows],
                       table.figures)  # fmt: skip
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


# Positions valued per pass by the numpy path: the temporaries stay in cache.
_CHUNK = 1 << 14


def revalue_book(book: Book) -> None:
    """Every position's and every unit's figures from scratch, written into the book.

    One fused pass (``monitor.engine._width_kernels.revalue_linear``) for a book of linear
    contracts; the numpy path, in chunks, otherwise (or with ``_kernels.ENABLED`` off).
    Unit sums are exact sums over open rows, in row order.
    """
    pos, table = book.positions, book.units
    n_rows, n_units = pos.size, table.size
    sums = table.figures[:n_units]
    settle_value = book.assets.value.take(book.settle_asset)
    fused = _kernels.ENABLED
    (reset_units if fused else reset_units_reference)(
        table.row[:n_units],
        table.account[:n_units],
        book.accounts.balance,
        book.assets.value,
        book.assets.haircut,
        pos.isolated_margin,
        pos.instrument,
        settle_value,
        sums,
    )
    if not (fused and book.contracts.linear_only):
        _revalue_book_numpy(book)
        return
    layout = book.models.layout
    revalue_linear(
        pos.instrument[:n_rows],
        pos.qty[:n_rows],
        pos.entry[:n_rows],
        pos.leverage[:n_rows],
        pos.unit[:n_rows],
        book.mark,
        layout.contract_size,
        settle_value,
        layout.n_tiers,
        layout.floors,
        layout.mmr,
        layout.imr,
        layout.cum,
        layout.mm_slope,
        layout.im_slope,
        pos.figures[:n_rows],
        sums,
    )


def _revalue_book_numpy(book: Book) -> None:
    """``revalue_book``'s row figures and unit sums through the vectorised numpy path."""
    pos, table = book.positions, book.units
    n_rows, n_units = pos.size, table.size
    for start in range(0, n_rows, _CHUNK):
        part = slice(start, min(n_rows, start + _CHUNK))
        upnl, initial, maintenance = figures(
            book, pos.instrument[part], pos.qty[part], pos.entry[part], pos.leverage[part]
        )
        rows = pos.figures[part]
        rows[:, 0], rows[:, 1], rows[:, 2] = upnl, initial, maintenance
    unit = pos.unit[:n_rows]
    values = pos.figures[:n_rows]
    is_open = pos.qty[:n_rows] != 0.0
    if not is_open.all():
        unit, values = unit[is_open], values[is_open]
    sums = table.figures[:n_units]
    for k in range(3):
        sums[:, UPNL + k] = _sum_by(unit, values[:, k], n_units)
    sums[:, UPNL + 3] = _sum_by(unit, np.abs(values[:, 0]), n_units)


def _sum_by(unit: Index, weights: NDArray[np.float64], n_units: int) -> NDArray[np.float64]:
    return np.bincount(unit, weights, minlength=n_units).astype(np.float64, copy=False)


def scale(collateral: NDArray[np.float64], gross: NDArray[np.float64]) -> NDArray[np.float64]:
    """The magnitude of equity's terms, which its rounding is measured against:
    ``|collateral| + sum|uPnL|`` (see ``monitor.states.slack``)."""
    result: NDArray[np.float64] = np.abs(collateral) + gross
    return result


def unique_ids(ids: Index, size: int) -> NDArray[np.intp]:
    """Sorted distinct ids below ``size``, as numpy's index type whatever the type of
    ``ids`` (a column's 4 bytes or an index's 8: the kernels they go to are compiled for one).

    Many ids (a tick of a popular instrument): mark them in a boolean array and read it
    back, linear in ``size`` (sorting 170k ids took about 30x longer). Few ids: sort.
    """
    if ids.shape[0] * 16 >= size:
        seen = np.zeros(size, dtype=np.bool_)
        seen[ids] = True
        return np.flatnonzero(seen)
    ordered = ids.astype(np.intp)  # a copy
    ordered.sort()
    keep = np.empty(ordered.shape[0], dtype=np.bool_)
    keep[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]
