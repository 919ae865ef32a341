"""What the engine holds, read: counts, marks, one account's risk now, and the portfolio
figures an event of a portfolio account carries.

:class:`~monitor.engine.Engine` inherits these queries; the cycle that changes the book
is in ``_engine``. They read the book's cached figures; ``account_risk`` first brings
the account's units up to date (with price bands a unit keeps the figures of the marks
it was last judged at).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import numpy as np
from numpy.typing import NDArray

from monitor.book import NO_ROW, PORTFOLIO, Book, Index
from monitor.engine._contract_risk import greeks_by_underlying
from monitor.engine._portfolio import PortfolioMargins
from monitor.engine._portfolio_risk import account_groups, portfolio_reductions
from monitor.engine._risk import margin_ratio, position_risks, unit_rows
from monitor.errors import InputError
from monitor.schema import (
    AccountMode,
    AccountRisk,
    AccountState,
    MarginEvent,
    PortfolioGroupRisk,
)
from monitor.states import STATE_NAMES

__all__ = ["EngineViews"]

_ROW_BLOCK = 1 << 18  # rows per step of a pass over every position: bounded temporaries


def _go_on() -> None:
    """No pause between blocks."""


_MODE_NAMES: tuple[AccountMode, ...] = ("cross", "isolated", "portfolio")


class EngineViews:
    """The engine's read-only queries (its base class)."""

    book: Book
    portfolio: PortfolioMargins

    def bring_up_to_date(self, units: Index) -> None:
        """Revalue ``units`` at the current marks (the engine's own)."""
        raise NotImplementedError

    @property
    def account_count(self) -> int:
        return self.book.accounts.size

    @property
    def position_count(self) -> int:
        """Open positions."""
        return self.book.positions.open_count

    def mark_price(self, symbol: str) -> float | None:
        """The mark the engine values ``symbol`` at (an instrument or a collateral price)."""
        book = self.book
        ix = book.instrument_index.get(symbol)
        if ix is not None:
            mark = float(book.mark[ix])
        elif symbol in book.assets.price_symbols:
            mark = float(book.assets.price[book.assets.price_symbols[symbol][0]])
        else:
            return None
        return None if mark != mark else mark

    def position_counts(self, pause: Callable[[], None] = _go_on) -> dict[str, int]:
        """Open positions by instrument kind (``linear``, ``inverse``, ``option``);
        ``pause`` is called between blocks of rows (a worker thread steps aside there)."""
        pos, n = self.book.positions, self.book.positions.size
        per_instrument = np.zeros(len(self.book.symbols), dtype=np.int64)
        for first in range(0, n, _ROW_BLOCK):  # a block at a time: bounded temporaries
            block = slice(first, min(first + _ROW_BLOCK, n))
            held = pos.instrument[block][pos.qty[block] != 0.0]
            per_instrument += np.bincount(held, minlength=per_instrument.shape[0])
            pause()
        counts = np.bincount(self.book.contracts.kind, weights=per_instrument, minlength=3)
        return {
            name: round(counts[code]) for code, name in enumerate(("linear", "inverse", "option"))
        }

    def state_counts(self) -> dict[AccountState, int]:
        """Accounts by their worst margin unit's state."""
        book = self.book
        n, units = book.accounts.size, book.units
        worst = units.state[book.accounts.cross_unit[:n]].copy()
        isolated = np.flatnonzero(units.row[: units.size] >= 0)
        if isolated.size:
            np.maximum.at(worst, units.account[isolated], units.state[isolated])
        counts = np.bincount(worst, minlength=len(STATE_NAMES))
        return {name: int(counts[code]) for code, name in enumerate(STATE_NAMES)}

    def account_risk(self, account: str) -> AccountRisk:
        """The account's figures now, summed over its margin units, with each position."""
        book = self.book
        ix = book.account_index.get(account)
        if ix is None:
            raise InputError(f"unknown account {account!r}; it has no ledger events or positions")
        units = np.array(book.units_of(ix), dtype=np.intp)
        self.bring_up_to_date(units)
        table = book.units
        collateral = float(table.collateral[units].sum())
        equity = collateral + float(table.upnl[units].sum())
        maintenance = float(table.maintenance[units].sum())
        balances = book.accounts.balance[ix]
        return AccountRisk(
            account=account,
            mode=_MODE_NAMES[int(book.accounts.mode[ix])],
            equity=equity,
            initial_margin=float(table.initial[units].sum()),
            maintenance_margin=maintenance,
            margin_ratio=margin_ratio(equity, maintenance),
            state=STATE_NAMES[int(table.state[units].max())],
            collateral_value=collateral,
            collateral={
                name: float(balances[k]) for k, name in enumerate(book.assets.names) if balances[k]
            },
            positions=tuple(p for unit in units.tolist() for p in position_risks(book, unit)),
            greeks=greeks_by_underlying(
                book, (r for unit in units.tolist() for r in unit_rows(book, unit).tolist())
            ),
            portfolio=self.portfolio_groups(ix, with_matrix=True),
        )

    def portfolio_groups(
        self, account_ix: int, with_matrix: bool = False
    ) -> tuple[PortfolioGroupRisk, ...]:
        """The account's portfolio-margin figures per group; none unless in portfolio mode."""
        if self.book.accounts.mode[account_ix] != PORTFOLIO:
            return ()
        return account_groups(self.book, self.portfolio, account_ix, with_matrix)

    def portfolio_units(self, units: Index) -> NDArray[np.bool_]:
        """Which of ``units`` are portfolio-margined (cross units of portfolio accounts)."""
        book = self.book
        mask: NDArray[np.bool_] = (book.units.row[units] == NO_ROW) & (
            book.accounts.mode[book.units.account[units]] == PORTFOLIO
        )
        return mask

    def portfolio_from_scratch(self) -> tuple[Index, NDArray[np.float64]]:
        """(portfolio units, their [IM, MM]) recomputed without any cache."""
        if not self.portfolio.has_accounts(self.book):
            return np.empty(0, dtype=np.intp), np.empty((0, 2))
        return self.portfolio.from_scratch(self.book)

    def _with_portfolio(self, event: MarginEvent, unit: int) -> MarginEvent:
        """The event with the group figures of a portfolio account's cross unit."""
        if self.book.units.row[unit] != NO_ROW:
            return event
        account = int(self.book.units.account[unit])
        if self.book.accounts.mode[account] != PORTFOLIO:
            return event
        groups = self.portfolio_groups(account)
        severe = event.state in ("liquidation", "bankrupt")
        reductions = portfolio_reductions(self.book, unit) if severe else ()
        return msgspec.structs.replace(event, portfolio=groups, reductions=reductions)
