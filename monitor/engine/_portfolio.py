"""Portfolio margin of the book's portfolio accounts, kept up to date per underlying group.

An account in ``portfolio`` mode has its cross unit margined by the scenario engine
(:mod:`monitor.scenarios`) instead of the sum of its positions' standard margins: per
underlying group (an option's ``underlying`` price symbol, or a future's own symbol; a
future whose symbol is an option underlying joins that group) the risk matrix, loss,
contingencies, MM and IM; the unit's IM and MM are the sums over its groups.

Incremental, pricing the instrument and not the position: a tick that moves any
instrument of a group reprices the group once (instruments x scenarios) and recomputes
the group's figures for every portfolio account holding it in one fused pass over their
positions (:func:`monitor.scenarios.holder_figures`), through the group's holder index
(:mod:`monitor.engine._portfolio_index`), which is kept between ticks and rebuilt after the
ledger touches one of its accounts; other groups' figures are kept. Booking an account's
ledger event recomputes that account's groups. The per-(account, group) IM and MM are kept
in one array per group over accounts, with the loss, contingencies and worst scenario that
events report beside them (48 bytes per account and group with portfolio holders); a
unit's figures are always their exact sum, never adjusted by deltas.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec
import numpy as np
from numpy.typing import NDArray

from monitor.book import INITIAL, MAINTENANCE, NO_ROW, PORTFOLIO, Book, Index
from monitor.engine._portfolio_index import HolderIndex, build_index, covers
from monitor.errors import ConfigError
from monitor.models import OPTION, years_to_expiry
from monitor.scenarios import (
    GroupMargin,
    GroupPositions,
    HolderFigures,
    InstrumentTerms,
    PricedGroup,
    group_margin,
    holder_figures,
    params_problem,
    price_group,
    strike_keys,
)
from monitor.schema import PortfolioMarginParams, PriceTick

__all__ = ["GroupLayout", "PortfolioMargins", "cross_rows"]

_DEFAULT = PortfolioMarginParams()
_MAX_RANGE = 0.95  # a scaled price_range stays a move the grid can price (< 100 %)
assert MAINTENANCE == INITIAL + 1  # write_totals scatters [IM, MM] as one block


class GroupLayout:
    """Which underlying group each instrument belongs to, and each group's parameters."""

    def __init__(self, book: Book, params: Mapping[str, PortfolioMarginParams]) -> None:
        contracts = book.contracts
        names: dict[str, int] = {}
        n = len(book.symbols)
        self.group_of = np.empty(n, dtype=np.intp)
        for ix, symbol in enumerate(book.symbols):
            if contracts.kind[ix] == OPTION:
                symbol = contracts.underlying_symbols[int(contracts.underlying[ix])]
            self.group_of[ix] = names.setdefault(symbol, len(names))
        self.names: tuple[str, ...] = tuple(names)
        self.index = names
        self.members = [np.flatnonzero(self.group_of == g) for g in range(len(names))]
        self.col = np.empty(n, dtype=np.intp)
        for members in self.members:
            self.col[members] = np.arange(members.size)
        for name, spec in params.items():
            if name not in names:
                raise ConfigError(
                    f"portfolio_margin.{name}: no such underlying group; name an option "
                    f"underlying or a future ({', '.join(self.names) or 'none listed'})"
                )
            problem = params_problem(spec)
            if problem is not None:
                raise ConfigError(f"portfolio_margin.{name}.{problem}")
        self.params = [params.get(name, _DEFAULT) for name in self.names]

    @property
    def size(self) -> int:
        return len(self.names)

    def terms(self, book: Book, group: int) -> InstrumentTerms:
        """The group's instruments as the scenario engine prices them, from the book."""
        ix = self.members[group]
        contracts, options = book.contracts, book.options
        option = contracts.kind[ix] == OPTION
        underlying = np.maximum(contracts.underlying[ix], 0)
        years = years_to_expiry(contracts.expiry_ms[ix], options.value_ts[ix])
        # A book without options has no underlyings at all: nothing to take from.
        underlying_price = (
            options.underlying_price.take(underlying, mode="clip")
            if options.underlying_price.size
            else np.full(ix.shape, np.nan)
        )
        return InstrumentTerms(
            kind=contracts.kind[ix],
            contract_size=book.contract_size[ix],
            price=np.where(option, underlying_price, book.mark[ix]),
            strike=contracts.strike[ix],
            years=np.where(option, years, 0.0),
            expiry_ms=contracts.expiry_ms[ix],
            vol=options.vol[ix],
            is_call=contracts.is_call[ix],
            coin_quoted=contracts.coin_quoted[ix],
            settle_value=book.assets.value[book.settle_asset[ix]],
        )


class PortfolioMargins:
    """Per-group scenario values (cached until the group moves) and per-account figures."""

    def __init__(self, book: Book, params: Mapping[str, PortfolioMarginParams]) -> None:
        self.layout = GroupLayout(book, params)
        self._configured_params = list(self.layout.params)  # before any dynamic scaling
        self._priced: list[PricedGroup | None] = [None] * self.layout.size
        self._figures: dict[int, NDArray[np.float64]] = {}  # group -> [accounts, 2]: IM, MM
        # group -> [accounts, 4]: loss, futures and option contingencies, worst scenario,
        # what an event reports, kept beside IM and MM so an event computes nothing.
        self._details: dict[int, NDArray[np.float64]] = {}
        self._holders: dict[int, HolderIndex] = {}  # group -> its holder index, until touched
        self._strike_keys: dict[int, Index] = {}  # group -> (expiry, strike) ids

    def scale_ranges(self, scales: Mapping[str, float]) -> list[str]:
        """Set the risk matrix's ``price_range`` of groups to the configured one times
        ``scales[group]`` (dynamic margin), kept below 1 (``_MAX_RANGE``); groups not named
        keep theirs. Returns the groups whose range changed (their prices are forgotten)."""
        layout = self.layout
        changed = []
        for name, factor in scales.items():
            group = layout.index.get(name)
            if group is None:
                continue
            base = self._configured_params[group]
            price_range = min(base.price_range * factor, _MAX_RANGE)
            if layout.params[group].price_range != price_range:
                layout.params[group] = msgspec.structs.replace(base, price_range=price_range)
                changed.append(name)
        return changed

    # ------------------------------------------------------------------ pricing

    def priced(self, book: Book, group: int) -> PricedGroup:
        """The group's scenario values, priced once per move of the group."""
        priced = self._priced[group]
        if priced is None:
            terms = self.layout.terms(book, group)
            keys = self._strike_keys.get(group)
            if keys is None:  # (expiry, strike) never change: key them once
                keys = self._strike_keys[group] = strike_keys(terms)
            priced = price_group(terms, self.layout.params[group], keys)
            self._priced[group] = priced
        return priced

    def ticked(
        self, book: Book, symbols: Iterable[str], assets: Iterable[int]
    ) -> dict[int, HolderIndex]:
        """Forget the prices of the groups a cycle's ticks touch: a tick of an instrument or
        of an underlying, or of a settle asset. Returns, per such group with portfolio
        holders, their index (none when there is no portfolio account).

        Any tick counts, not only one that moved a mark: an option tick that re-implies its
        volatility at an unchanged mark still moves the volatility scenarios.
        """
        groups: set[int] = set()
        for symbol in symbols:
            group = self.layout.index.get(symbol)
            if group is not None:
                groups.add(group)
            ix = book.instrument_index.get(symbol)
            if ix is not None:
                groups.add(int(self.layout.group_of[ix]))
        for asset in assets:
            groups.update(self.layout.group_of[book.settle_asset == asset].tolist())
        for group in groups:
            self._priced[group] = None
        if not groups or (not self._figures and not self.has_accounts(book)):
            return {}
        held = {}
        for group in sorted(groups):
            index = self.holders(book, group)
            if index.size:
                held[group] = index
        return held

    def holders(self, book: Book, group: int) -> HolderIndex:
        """The group's portfolio holders and their rows: kept, or built from the holder
        lists of the group's instruments."""
        index = self._holders.get(group)
        if index is None:
            pos = book.positions
            parts = [pos.holders_of(ix) for ix in self.layout.members[group].tolist()]
            rows = np.concatenate(parts) if parts else np.empty(0, dtype=np.intp)
            index = build_index(book, rows, self.layout.col)
            self._holders[group] = index
        return index

    def _forget_holders(self, book: Book, accounts: Index) -> None:
        """Drop the holder index of every group whose holders or rows ``accounts``
        (ledger-touched, sorted) changed (see :func:`covers`)."""
        if not self._holders or accounts.size == 0:
            return
        rows = self._portfolio_rows(book, cross_rows(book, book.accounts.cross_unit[accounts]))
        group = self.layout.group_of[book.positions.instrument[rows]]
        for g in list(self._holders):
            if not covers(book, self._holders[g], accounts, rows[group == g]):
                del self._holders[g]

    # ------------------------------------------------------------------ figures

    def compute(
        self, book: Book, group: int, rows: Index, priced: PricedGroup | None = None
    ) -> tuple[Index, GroupMargin]:
        """(accounts, their figures with the risk matrix) in ``group`` from position
        ``rows`` (open, in the group): the numpy path, for an account's events and
        ``evaluate``; ticks and ledger cycles use :func:`holder_figures`."""
        pos = book.positions
        accounts, holder = np.unique(pos.account[rows], return_inverse=True)
        holder = holder.reshape(-1)
        coordinates = GroupPositions(
            holder, self.layout.col[pos.instrument[rows]], pos.qty[rows], accounts.size
        )
        if priced is None:
            priced = self.priced(book, group)
        standard_initial = None
        if priced.params.model == "pm_hybrid":  # the floor's base: the rows' standard IM
            standard_initial = np.asarray(
                np.bincount(holder, pos.figures[rows, 1], minlength=accounts.size),
                dtype=np.float64,
            )
        return accounts, group_margin(priced, coordinates, standard_initial)

    def _store(self, book: Book, group: int, accounts: Index, figures: HolderFigures) -> None:
        table = self._figures.get(group)
        size = book.accounts.size
        if table is None or table.shape[0] < size:
            capacity = max(size, 2 * (0 if table is None else table.shape[0]))
            self._figures[group] = table = _grown(table, capacity, 2)
            self._details[group] = _grown(self._details.get(group), capacity, 4)
        table[accounts, 0] = figures.initial
        table[accounts, 1] = figures.maintenance
        details = self._details[group]
        details[accounts, 0] = figures.loss
        details[accounts, 1] = figures.futures_contingency
        details[accounts, 2] = figures.option_contingency
        details[accounts, 3] = figures.worst

    def stored(self, account: int, group: int) -> HolderFigures | None:
        """The account's figures in ``group`` as the last recompute left them (current after
        every cycle), or None when none were stored."""
        table = self._figures.get(group)
        if table is None or account >= table.shape[0]:
            return None
        (initial, maintenance), details = table[account], self._details[group][account]
        loss, futures, options, worst = details.tolist()
        return HolderFigures(
            np.array([loss]),
            np.array([int(worst)], dtype=np.intp),
            np.array([futures]),
            np.array([options]),
            np.array([maintenance]),
            np.array([initial]),
        )

    def _portfolio_rows(self, book: Book, rows: Index) -> Index:
        """The ``rows`` that are open positions in a portfolio account's cross unit."""
        pos = book.positions
        account = pos.account[rows]
        keep = (book.accounts.mode[account] == PORTFOLIO) & (
            pos.unit[rows] == book.accounts.cross_unit[account]
        )
        result: Index = rows[keep & (pos.qty[rows] != 0.0)]
        return result

    def has_accounts(self, book: Book) -> bool:
        if not book.maybe_portfolio:  # no account was ever put in portfolio mode
            return False
        return bool((book.accounts.mode[: book.accounts.size] == PORTFOLIO).any())

    def after_prices(self, book: Book, units: Index, held: Mapping[int, HolderIndex]) -> None:
        """After a tick's ``refresh_units(units)``: recompute the groups ``held`` (from
        :meth:`ticked`) for their portfolio holders, then set the IM and MM of the
        portfolio units among ``units``."""
        for group, index in held.items():
            self._store_index(book, group, index)
        self.write_totals(book, units)

    def _store_index(self, book: Book, group: int, index: HolderIndex) -> None:
        """Compute and keep the figures of every holder of ``index`` in ``group``."""
        figures = holder_figures(
            self.priced(book, group),
            index.indptr,
            index.rows,
            index.col,
            book.positions.qty,
            book.positions.figures[:, 1],
        )
        self._store(book, group, index.accounts, figures)

    def units_of(self, book: Book, held: Mapping[int, HolderIndex]) -> Index:
        """The cross units of the holders in ``held``."""
        if not held:
            return np.empty(0, dtype=np.intp)
        accounts = np.concatenate([index.accounts for index in held.values()])
        units: Index = book.accounts.cross_unit[accounts]
        return units

    def triggers(
        self,
        book: Book,
        held: Mapping[int, HolderIndex],
        latest: Mapping[str, PriceTick],
        moved: Mapping[int, list[PriceTick]],
    ) -> dict[int, list[PriceTick]]:
        """``moved`` plus, for the instruments of ``held`` groups, the ticks of their own
        symbol or underlying: what an event of a portfolio unit names as its trigger."""
        if not held:
            return dict(moved)
        out = {ix: list(ticks) for ix, ticks in moved.items()}
        group_tick = {g: latest.get(self.layout.names[g]) for g in held}
        for group in held:
            for ix in self.layout.members[group].tolist():
                found = out.setdefault(ix, [])
                for tick in (latest.get(book.symbols[ix]), group_tick[group]):
                    if tick is not None and tick not in found:
                        found.append(tick)
        return out

    def after_ledger(self, book: Book, units: Index) -> None:
        """After booking: recompute every group of the accounts of ``units`` (a position,
        a mode or a wallet changed) and set the IM and MM of their portfolio units."""
        accounts = np.unique(book.units.account[units])
        self._forget_holders(book, accounts)
        for group, table in self._figures.items():
            inside = accounts[accounts < table.shape[0]]
            table[inside] = 0.0
            self._details[group][inside] = 0.0
        portfolio = accounts[book.accounts.mode[accounts] == PORTFOLIO]
        if portfolio.size:
            rows = cross_rows(book, book.accounts.cross_unit[portfolio])
            self._by_group(book, rows)
        self.write_totals(book, units)

    def _by_group(self, book: Book, rows: Index, keep: bool = False) -> None:
        """Compute and store the figures of the holders of ``rows`` (open portfolio cross
        rows) in each of their groups; ``keep``: ``rows`` are all of each group's rows, so
        the holder indexes built are kept for the ticks."""
        if rows.size == 0:
            return
        group = self.layout.group_of[book.positions.instrument[rows]]
        order = np.argsort(group, kind="stable")
        rows, group = rows[order], group[order]
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        for start, end in zip(starts.tolist(), [*starts[1:].tolist(), rows.size], strict=True):
            g = int(group[start])
            index = build_index(book, rows[start:end], self.layout.col)
            if keep:
                self._holders[g] = index
            self._store_index(book, g, index)

    def write_totals(self, book: Book, units: Index) -> None:
        """Set IM and MM of the portfolio cross units among ``units`` to their group sums."""
        if not book.maybe_portfolio:  # none: skip reading every unit's account and mode
            return
        account = book.units.account[units]
        mine = (book.accounts.mode[account] == PORTFOLIO) & (book.units.row[units] == NO_ROW)
        if not mine.any():
            return
        if not mine.all():
            units, account = units[mine], account[mine]
        # INITIAL and MAINTENANCE are adjacent columns: one scatter of [IM, MM] rows.
        book.units.figures[units, INITIAL : MAINTENANCE + 1] = self._sums(account)

    def _sums(self, accounts: Index) -> NDArray[np.float64]:
        totals = np.zeros((accounts.size, 2))
        top = int(accounts.max()) if accounts.size else -1
        for group in sorted(self._figures):
            table = self._figures[group]
            if top < table.shape[0]:
                totals += table.take(accounts, axis=0)
            else:
                inside = accounts < table.shape[0]
                totals[inside] += table[accounts[inside]]
        return totals

    def recompute_all(self, book: Book) -> None:
        """Reprice every group and recompute every portfolio account (the reference path)."""
        self._priced = [None] * self.layout.size
        self._figures = {}
        self._details = {}
        self._holders = {}
        open_rows = np.flatnonzero(book.positions.qty[: book.positions.size] != 0.0)
        self._by_group(book, self._portfolio_rows(book, open_rows), keep=True)
        self.write_totals(book, np.arange(book.units.size, dtype=np.intp))

    def from_scratch(self, book: Book) -> tuple[Index, NDArray[np.float64]]:
        """(portfolio cross units, their [IM, MM]) recomputed without any cache."""
        fresh = PortfolioMargins.__new__(PortfolioMargins)
        fresh.layout = self.layout
        fresh._priced = [None] * self.layout.size
        fresh._figures = {}
        fresh._details = {}
        fresh._holders = {}
        fresh._strike_keys = self._strike_keys
        open_rows = np.flatnonzero(book.positions.qty[: book.positions.size] != 0.0)
        fresh._by_group(book, fresh._portfolio_rows(book, open_rows))
        n = book.accounts.size
        accounts = np.flatnonzero(book.accounts.mode[:n] == PORTFOLIO)
        return book.accounts.cross_unit[accounts], fresh._sums(accounts)


def cross_rows(book: Book, units: Index) -> Index:
    """The open position rows of ``units``, walking their row lists all at once."""
    pos = book.positions
    found = []
    row = book.units.head[units]
    row = row[row != NO_ROW]
    while row.size:
        found.append(row)
        row = pos.unit_next[row]
        row = row[row != NO_ROW]
    return np.concatenate(found) if found else np.empty(0, dtype=np.intp)


def _grown(table: NDArray[np.float64] | None, capacity: int, columns: int) -> NDArray[np.float64]:
    grown = np.zeros((capacity, columns))
    if table is not None:
        grown[: table.shape[0]] = table
    return grown
