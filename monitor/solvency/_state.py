"""A copy of what book-wide stress needs, taken inside a cycle in one fused pass.

The service copies what the stress needs inside a cycle (:class:`BookCopier`: one pass
over the unit and position columns into buffers kept between copies) and derives the
stress's view (:func:`state_of`) and the report in a worker thread, so the event loop
keeps judging ticks while the stress runs on a consistent picture of the book.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NamedTuple, overload

import numpy as np
from numpy.typing import NDArray

from monitor.book import COLLATERAL, GROSS, UPNL, Index, NameIndex
from monitor.engine import Engine
from monitor.models import INVERSE, OPTION, years_to_expiry
from monitor.models._layout import Layout
from monitor.scenarios import InstrumentTerms
from monitor.solvency._adl_kernels import PositionTerms
from monitor.solvency._copy_kernels import COPY_IDS, revalue_copy, take_book
from monitor.solvency._gate import OPEN, CycleGate
from monitor.solvency._kernels import add_sizes
from monitor.solvency._report_kernels import row_shares

__all__ = [
    "LINEAR_UPNL",
    "AccountNames",
    "BookCopier",
    "BookCopy",
    "BookState",
    "StressFigures",
    "book_state",
    "copy_book",
    "state_of",
]

Array = NDArray[np.float64]


class AccountNames(Sequence[str]):
    """The first ``n`` names of a book's account name index (append-only), by dense id:
    a view, so a copy of a book of millions of accounts copies no names."""

    __slots__ = ("_n", "_names")

    def __init__(self, names: NameIndex, n: int) -> None:
        self._names, self._n = names, n

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            ids = range(self._n)[index]
            return self._names.names_of(np.arange(ids.start, ids.stop, ids.step))
        if not -self._n <= index < self._n:
            raise IndexError(index)
        return self._names.name(index % self._n)

    @property
    def names(self) -> NameIndex:
        """The book's whole index (append-only; only the first ``len(self)`` are this copy's)."""
        return self._names


#: :attr:`BookState.row_upnl` of a book of linear contracts: none kept, worked out where read.
LINEAR_UPNL: Final = np.zeros(0)


class BookState(NamedTuple):
    """Margin units, open positions and instrument terms of a book at one moment.

    Amounts are in the valuation asset. ``unit_scale`` is ``|collateral| + sum |uPnL|``,
    the magnitude the engine's bankruptcy comparison is measured against, plus the
    positions' ``sum |q| x |contract size x price|`` (``add_sizes``): the stress's
    rounding scale before each scenario's P&L.
    """

    accounts: Sequence[str]  # account names by dense id
    unit_account: Index
    unit_equity: Array
    unit_scale: Array
    row_unit: Index  # open positions
    row_instrument: Index
    row_qty: Array
    # Each position's uPnL; empty (LINEAR_UPNL) for a book of linear contracts only, whose
    # uPnL at the marks the ADL kernels work out where they read it (PositionTerms.upnl):
    # 8 bytes a position less.
    row_upnl: Array
    row_share: Array  # share of its unit's debt (row_shares: by maintenance margin)
    row_entry: Array  # average entry price
    mark: Array  # per instrument
    settle_value: Array  # per instrument: its settle asset's value
    symbols: tuple[str, ...]
    bases: tuple[str, ...]  # distinct underlyings (instrument ``base``), sorted
    instrument_base: Index  # into ``bases``
    terms: InstrumentTerms  # every instrument, as the scenario engine prices them
    exposure_assets: tuple[str, ...] = ()  # collateral assets that move with an underlying
    exposure_base: Index = np.zeros(0, dtype=np.intp)  # their underlying, into ``bases``
    unit_exposure: Array = np.zeros((0, 0))  # units x those assets: wallet value now

    @property
    def units(self) -> int:
        return int(self.unit_account.shape[0])

    def position_terms(self) -> PositionTerms:
        """What the ADL kernels work each position's values at its entry and at the mark
        (and, with ``LINEAR_UPNL``, its uPnL) out from, where they read them: arrays of 8
        bytes a position otherwise."""
        return PositionTerms(
            self.row_entry,
            self.terms.kind == INVERSE,
            self.terms.contract_size,
            self.settle_value,
            self.mark,
        )


class StressFigures(NamedTuple):
    """Per unit and scenario: the shocked equity (with the P&L of its positions and of
    its moving collateral), who is bankrupt and the debt; per account its debt and
    bankrupt units."""

    moves: Array  # instruments x scenarios: the price move applied
    values: Array  # instruments x scenarios: value change of one contract
    equity: Array | None  # units x scenarios, E + P&L (None: not kept, stress_scenarios)
    bankrupt: NDArray[np.bool_]  # units x scenarios
    debt: Array  # units x scenarios, max(0, -E')
    account_debt: Array  # accounts x scenarios
    account_bankrupt: NDArray[np.int32]  # accounts x scenarios: bankrupt units
    by_base: Array  # underlyings x scenarios: the debt split by BookState.row_share


class BookCopy(NamedTuple):
    """What the stress needs of a book, copied inside a cycle (:class:`BookCopier`): per
    unit its account, equity and rounding scale, the open positions compacted, the
    instruments' marks and terms. :func:`state_of` derives the :class:`BookState` off
    the loop. ``unit_exposure`` is each unit's wallet value (after haircuts) in each
    collateral asset that moves with an underlying (``exposure_base``, index into
    ``bases``): a cross unit's wallet, zero for an isolated unit."""

    accounts: Sequence[str]
    unit_account: Index
    unit_equity: Array
    unit_scale: Array
    row_unit: Index
    row_instrument: Index
    row_qty: Array
    row_entry: Array
    row_upnl: Array
    row_maintenance: Array
    mark: Array
    settle_value: Array
    symbols: tuple[str, ...]
    bases: tuple[str, ...]
    instrument_base: Index
    terms: InstrumentTerms
    exposure_assets: tuple[str, ...]
    exposure_base: Index
    unit_exposure: Array  # units x exposure assets
    # With price bands the cached figures are those of the marks each unit was last
    # judged at: the copy is revalued at ``mark`` off the loop (:func:`state_of`), from
    # these. None: the figures are current.
    layout: Layout | None = None
    unit_collateral: Array = np.zeros(0)


class BookCopier:
    """Copies a book for the stress into buffers kept between copies, so a cycle pays
    one fused pass over the columns (:func:`monitor.solvency._kernels.take_book`) and
    no page faults of fresh arrays. A copy's arrays are valid until the next
    :meth:`take`: take the next one only once the stress of the last has finished."""

    def __init__(self) -> None:
        self._units = np.empty((3, 0))
        self._account = np.empty(0, dtype=COPY_IDS)
        self._rows = np.empty((4, 0))
        self._index = np.empty((2, 0), dtype=COPY_IDS)

    def take(self, engine: Engine) -> BookCopy:
        book = engine.book
        units, pos = book.units, book.positions
        n_units, n_rows = units.size, pos.size
        # A sixteenth to spare. The buffers stay resident: with price bands 24 bytes a
        # position and 12 a unit (the figures are revalued off the loop), without them 40
        # and 28; about 60 MB on the end-to-end bench's book (1M accounts, 1.7M positions).
        if self._account.shape[0] < n_units:
            grown = n_units + n_units // 16
            self._units, self._account = np.empty((3, grown)), np.empty(grown, dtype=COPY_IDS)
        if self._rows.shape[1] < n_rows:
            grown = n_rows + n_rows // 16
            self._rows, self._index = np.empty((4, grown)), np.empty((2, grown), dtype=COPY_IDS)
        n_open = int(
            take_book(
                units.account[:n_units], units.figures[:n_units], pos.unit[:n_rows],
                pos.instrument[:n_rows], pos.qty[:n_rows], pos.entry[:n_rows],
                pos.figures[:n_rows], COLLATERAL, UPNL, GROSS,
                not engine.banded,
                self._units, self._account, self._rows, self._index,
            )
        )  # fmt: skip
        bases = tuple(sorted({i.base for i in book.instruments}))
        base_index = {base: k for k, base in enumerate(bases)}
        assets, asset_base = _moving_assets(engine, base_index)
        rows, index = self._rows[:, :n_open], self._index[:, :n_open]
        return BookCopy(
            accounts=AccountNames(book.account_index, len(book.account_index)),
            unit_account=self._account[:n_units],
            unit_equity=self._units[0, :n_units],
            unit_scale=self._units[1, :n_units],
            row_unit=index[0],
            row_instrument=index[1],
            row_qty=rows[0],
            row_entry=rows[1],
            row_upnl=rows[2],
            row_maintenance=rows[3],
            mark=book.mark.copy(),
            settle_value=book.assets.value[book.settle_asset],
            symbols=book.symbols,
            bases=bases,
            instrument_base=np.array([base_index[i.base] for i in book.instruments], dtype=np.intp),
            terms=_terms(engine),
            exposure_assets=tuple(book.assets.names[a] for a in assets),
            exposure_base=np.array(asset_base, dtype=np.intp),
            unit_exposure=_unit_exposure(engine, assets),
            layout=book.models.layout if engine.banded else None,
            unit_collateral=self._units[2, :n_units],
        )


def copy_book(engine: Engine) -> BookCopy:
    """Copy what the stress needs of ``engine``'s book into fresh arrays."""
    return BookCopier().take(engine)


def state_of(copy: BookCopy, *, gate: CycleGate = OPEN) -> BookState:
    """The stress's view of a copied book: the copy, revalued at its marks first when it
    was taken with price bands, into arrays of this stress's own (the copier's buffers
    for those figures are then never written, so they take no resident memory between
    stresses). Such a book is linear only: its positions' uPnL is not kept but worked out
    where the ADL reads it (``LINEAR_UPNL``)."""
    if copy.layout is not None:
        n_units, n_rows = copy.unit_collateral.shape[0], copy.row_qty.shape[0]
        revalued = (np.empty(n_rows), np.empty(n_units), np.empty(n_units))
        revalue_copy(
            copy.row_unit, copy.row_instrument, copy.row_qty, copy.row_entry, copy.mark,
            copy.layout, copy.settle_value, copy.unit_collateral, *revalued, gate=gate,
        )  # fmt: skip
        row_maintenance, unit_equity, unit_scale = revalued
        copy = copy._replace(
            row_upnl=LINEAR_UPNL,
            row_maintenance=row_maintenance,
            unit_equity=unit_equity,
            unit_scale=unit_scale,
        )
    else:  # the copier's buffer, which a second view of this copy would read again
        copy = copy._replace(unit_scale=copy.unit_scale.copy())
    # The rounding scale takes the positions' sizes (the same in every scenario) once
    # here, not in each pass (an array per unit less while a pass runs: 13 MB at 1.6M).
    notional = np.abs(copy.terms.contract_size * copy.terms.price)
    add_sizes(
        copy.row_unit, copy.row_instrument, copy.row_qty, notional, copy.unit_scale, gate=gate
    )
    # The state keeps the shares the maintenance margins give, not the margins: the
    # same in every scenario, and the only use the stress has for the margins. Margins
    # revalued for this stress are overwritten by their shares (24 MB at 3M positions).
    share = row_shares(
        copy.row_unit,
        copy.row_maintenance,
        copy.unit_account.shape[0],
        gate=gate,
        out=copy.row_maintenance if copy.layout is not None else None,
    )
    return BookState(
        accounts=copy.accounts,
        unit_account=copy.unit_account,
        unit_equity=copy.unit_equity,
        unit_scale=copy.unit_scale,
        row_unit=copy.row_unit,
        row_instrument=copy.row_instrument,
        row_qty=copy.row_qty,
        row_upnl=copy.row_upnl,
        row_share=share,
        row_entry=copy.row_entry,
        mark=copy.mark,
        settle_value=copy.settle_value,
        symbols=copy.symbols,
        bases=copy.bases,
        instrument_base=copy.instrument_base,
        terms=copy.terms,
        exposure_assets=copy.exposure_assets,
        exposure_base=copy.exposure_base,
        unit_exposure=copy.unit_exposure,
    )


def book_state(engine: Engine) -> BookState:
    """The stress's view of ``engine``'s book now (a copy: no reference kept)."""
    return state_of(copy_book(engine))


def _moving_assets(engine: Engine, base_index: dict[str, int]) -> tuple[list[int], list[int]]:
    """The collateral assets whose price moves with an underlying, and its index: an
    asset priced by an instrument's tick moves with that instrument's base, one priced
    by a tick named after an underlying (``BTC``) with that underlying."""
    book = engine.book
    found: dict[int, int] = {}
    for symbol, members in book.assets.price_symbols.items():
        ix = book.instrument_index.get(symbol)
        base = book.instruments[ix].base if ix is not None else symbol
        if base in base_index:
            for asset in members:
                found[asset] = base_index[base]
    assets = sorted(found)
    return assets, [found[a] for a in assets]


def _unit_exposure(engine: Engine, assets: list[int]) -> Array:
    """Units x ``assets``: the value after haircuts of a cross unit's wallet balance in
    each asset (a debt at full value, as ``AssetTable.wallet_value``); 0 for isolated."""
    book = engine.book
    n_units, n_accounts = book.units.size, len(book.account_names)
    exposure = np.zeros((n_units, len(assets)))
    if not assets:
        return exposure
    table = book.assets
    balance = book.accounts.balance[:n_accounts][:, assets]
    value = table.value[assets]
    haircut = np.where(balance > 0.0, table.haircut[assets], 0.0)
    cross = book.accounts.cross_unit[:n_accounts]
    has = cross >= 0
    exposure[cross[has]] = (balance * value * (1.0 - haircut))[has]
    return exposure


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
