"""A copy of what book-wide stress needs, taken inside a cycle in a few array copies.

The service takes this snapshot between cycles (milliseconds for a million units) and
computes the report from it in a worker thread, so the event loop keeps judging ticks
while the stress runs on a consistent picture of the book.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from monitor.book import NO_ROW
from monitor.engine import Engine
from monitor.models import INVERSE, OPTION, years_to_expiry
from monitor.scenarios import InstrumentTerms

__all__ = ["BookState", "StressFigures", "book_state"]

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


def book_state(engine: Engine) -> BookState:
    """Copy ``engine``'s units, open positions and instrument terms (no reference kept)."""
    book = engine.book
    units, pos = book.units, book.positions
    n_units = units.size
    rows = np.flatnonzero(pos.unit[: pos.size] != NO_ROW)
    instrument = pos.instrument[rows]
    qty = pos.qty[rows]
    entry = pos.entry[rows]
    kind = book.contracts.kind[instrument]
    size = qty * book.contract_size[instrument]
    value = book.assets.value[book.settle_asset[instrument]]
    mark = book.mark[instrument]
    with np.errstate(divide="ignore", invalid="ignore"):
        entry_value = np.where(kind == INVERSE, np.abs(size) / entry, np.abs(size * entry))
        mark_value = np.where(kind == INVERSE, size / mark, size * mark)
    bases = tuple(sorted({i.base for i in book.instruments}))
    base_index = {base: k for k, base in enumerate(bases)}
    return BookState(
        accounts=tuple(book.account_names),
        unit_account=units.account[:n_units].copy(),
        unit_equity=units.collateral[:n_units] + units.upnl[:n_units],
        unit_scale=np.abs(units.collateral[:n_units]) + units.figures[:n_units, 4],
        row_unit=pos.unit[rows],
        row_instrument=instrument,
        row_qty=qty,
        row_upnl=pos.figures[rows, 0],
        row_maintenance=pos.figures[rows, 2],
        row_entry_value=np.nan_to_num(entry_value * value),
        row_mark_value=np.nan_to_num(mark_value * value),
        symbols=book.symbols,
        bases=bases,
        instrument_base=np.array([base_index[i.base] for i in book.instruments], dtype=np.intp),
        terms=_terms(engine),
    )


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
