"""A copy of what book-wide stress needs, taken inside a cycle in a few array copies.

The service copies the book's columns inside a cycle (:func:`copy_book`: contiguous
slices, memcpy speed) and derives the stress's view (:func:`state_of`) and the report in
a worker thread, so the event loop keeps judging ticks while the stress runs on a
consistent picture of the book.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from monitor.book import COLLATERAL, GROSS, NO_ROW, UPNL
from monitor.engine import Engine
from monitor.models import INVERSE, OPTION, years_to_expiry
from monitor.scenarios import InstrumentTerms

__all__ = ["BookCopy", "BookState", "StressFigures", "book_state", "copy_book", "state_of"]

Array = NDArray[np.float64]
Index = NDArray[np.intp]


class BookState(NamedTuple):
    """Margin units, open positions and instrument terms of a book at one moment.

    Amounts are in the valuation asset. ``unit_scale`` is ``|collateral| + sum |uPnL|``,
    the magnitude the engine's bankruptcy comparison is measured against.
    """

    accounts: tuple[str, ...]  # account names by dense id
    unit_account: Index
    unit_equity: Array
    unit_scale: Array
    row_unit: Index  # open positions
    row_instrument: Index
    row_qty: Array
    row_upnl: Array
    row_maintenance: Array
    row_entry_value: Array  # |position value at the average entry|
    row_mark_value: Array  # signed position value at the mark
    symbols: tuple[str, ...]
    bases: tuple[str, ...]  # distinct underlyings (instrument ``base``), sorted
    instrument_base: Index  # into ``bases``
    terms: InstrumentTerms  # every instrument, as the scenario engine prices them

    @property
    def units(self) -> int:
        return int(self.unit_account.shape[0])

    def row_share(self) -> Array:
        """Each open position's share of its unit: its maintenance margin over the sum of
        its unit's positions' (equal shares in a unit whose positions need none). The
        shares of a unit's positions sum to 1, so a unit's debt split by them adds up."""
        mm = np.maximum(self.row_maintenance, 0.0)
        total = np.bincount(self.row_unit, weights=mm, minlength=self.units)[self.row_unit]
        count = np.bincount(self.row_unit, minlength=self.units)[self.row_unit]
        share: Array = np.where(total > 0.0, mm / np.where(total > 0.0, total, 1.0), 1.0 / count)
        return share


class StressFigures(NamedTuple):
    """Per unit and scenario: the P&L, the shocked equity, and who is bankrupt."""

    moves: Array  # instruments x scenarios: the price move applied
    values: Array  # instruments x scenarios: value change of one contract
    pnl: Array  # units x scenarios
    equity: Array  # units x scenarios, E + P&L
    bankrupt: NDArray[np.bool_]  # units x scenarios
    debt: Array  # units x scenarios, max(0, -E')


class BookCopy(NamedTuple):
    """The book's columns copied as they are (contiguous slices, memcpy speed): what a
    cycle pays. :func:`state_of` derives the :class:`BookState` from it off the loop."""

    accounts: tuple[str, ...]
    unit_account: Index
    unit_figures: Array  # collateral, upnl, initial, maintenance, gross
    pos_unit: Index
    pos_instrument: Index
    pos_qty: Array
    pos_entry: Array
    pos_figures: Array  # upnl, initial, maintenance
    mark: Array
    settle_value: Array  # per instrument
    symbols: tuple[str, ...]
    bases: tuple[str, ...]
    instrument_base: Index
    terms: InstrumentTerms


def copy_book(engine: Engine) -> BookCopy:
    """Copy ``engine``'s unit and position columns and instrument terms (no reference kept)."""
    book = engine.book
    units, pos = book.units, book.positions
    n_units, n_rows = units.size, pos.size
    bases = tuple(sorted({i.base for i in book.instruments}))
    base_index = {base: k for k, base in enumerate(bases)}
    return BookCopy(
        accounts=tuple(book.account_names),
        unit_account=units.account[:n_units].copy(),
        unit_figures=units.figures[:n_units].copy(),
        pos_unit=pos.unit[:n_rows].copy(),
        pos_instrument=pos.instrument[:n_rows].copy(),
        pos_qty=pos.qty[:n_rows].copy(),
        pos_entry=pos.entry[:n_rows].copy(),
        pos_figures=pos.figures[:n_rows].copy(),
        mark=book.mark.copy(),
        settle_value=book.assets.value[book.settle_asset],
        symbols=book.symbols,
        bases=bases,
        instrument_base=np.array([base_index[i.base] for i in book.instruments], dtype=np.intp),
        terms=_terms(engine),
    )


def state_of(copy: BookCopy) -> BookState:
    """The stress's view of a copied book: open positions only, with their values."""
    rows = np.flatnonzero(copy.pos_unit != NO_ROW)
    instrument = copy.pos_instrument[rows]
    qty = copy.pos_qty[rows]
    entry = copy.pos_entry[rows]
    kind = copy.terms.kind[instrument]
    size = qty * copy.terms.contract_size[instrument]
    value = copy.settle_value[instrument]
    mark = copy.mark[instrument]
    with np.errstate(divide="ignore", invalid="ignore"):
        entry_value = np.where(kind == INVERSE, np.abs(size) / entry, np.abs(size * entry))
        mark_value = np.where(kind == INVERSE, size / mark, size * mark)
    figures = copy.unit_figures
    return BookState(
        accounts=copy.accounts,
        unit_account=copy.unit_account,
        unit_equity=figures[:, COLLATERAL] + figures[:, UPNL],
        unit_scale=np.abs(figures[:, COLLATERAL]) + figures[:, GROSS],
        row_unit=copy.pos_unit[rows],
        row_instrument=instrument,
        row_qty=qty,
        row_upnl=copy.pos_figures[rows, 0],
        row_maintenance=copy.pos_figures[rows, 2],
        row_entry_value=np.nan_to_num(entry_value * value),
        row_mark_value=np.nan_to_num(mark_value * value),
        symbols=copy.symbols,
        bases=copy.bases,
        instrument_base=copy.instrument_base,
        terms=copy.terms,
    )


def book_state(engine: Engine) -> BookState:
    """The stress's view of ``engine``'s book now (a copy: no reference kept)."""
    return state_of(copy_book(engine))


def _terms(engine: Engine) -> InstrumentTerms:
    """Every instrument as the scenario engine prices it (as the portfolio groups do)."""
    book = engine.book
    contracts, options = book.contracts, book.options
    option = contracts.kind == OPTION
    underlying = np.maximum(contracts.underlying, 0)
    years = years_to_expiry(contracts.expiry_ms, options.value_ts)
    underlying_price = (
        options.underlying_price[underlying] if options.underlying_price.size else book.mark
    )
    return InstrumentTerms(
        kind=contracts.kind.copy(),
        contract_size=book.contract_size.copy(),
        price=np.where(option, underlying_price, book.mark),
        strike=contracts.strike.copy(),
        years=np.where(option, years, 0.0),
        expiry_ms=contracts.expiry_ms.copy(),
        vol=options.vol.copy(),
        is_call=contracts.is_call.copy(),
        coin_quoted=contracts.coin_quoted.copy(),
        settle_value=book.assets.value[book.settle_asset],
    )
