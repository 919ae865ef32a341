"""The book: every account's collateral and positions, as columnar numpy state.

The book does the accounting of ledger events (one Python call per event) and
records which positions and margin units each one touched; the engine revalues
them. Where money goes:

* Fills: realised PnL goes to the wallet in the instrument's settle asset; the fee
  is taken from the wallet in the fee asset (the settle asset when not given).
* Isolated positions (Binance USDⓈ-M convention): opening or increasing moves the
  initial margin of the added size, at the fill price, from the wallet to the
  position; reducing releases the same fraction of the allocated margin back to the
  wallet; closing or flipping releases all of it (a flip then allocates for the new
  side). Realised PnL and fees go to the wallet, not the position; funding on an
  open isolated position is added to (or taken from) its allocated margin.
* Inverse positions (``monitor.book._contracts``) realise PnL in the coin; options move
  their premium between wallets when traded and are always in the cross unit; a
  delivery closes an option at its intrinsic value.
* A margin mode change applies to positions opened from flat afterwards; an open
  position keeps the mode it was opened in until it is closed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from monitor.book._collateral import AssetTable
from monitor.book._columns import Index
from monitor.book._contracts import OptionState, position_values, trade_inverse
from monitor.book._names import NameIndex
from monitor.book._positions import NO_ROW, PositionTable, trade
from monitor.book._seen import SeenIds
from monitor.book._tables import CROSS, ISOLATED, PORTFOLIO, AccountTable, UnitTable
from monitor.errors import ConfigError, InputError
from monitor.models import INVERSE, OPTION, ContractTable, ModelTable
from monitor.schema import CollateralAsset, Instrument

__all__ = ["Book"]


class Book:
    """Accounts, margin units, positions and prices of a fixed set of instruments."""

    def __init__(
        self,
        instruments: Sequence[Instrument],
        models: ModelTable | None = None,
        valuation_asset: str = "USDT",
        collateral: Sequence[CollateralAsset] = (),
        idempotency_window_ms: int | None = None,
        idempotency_max_ids: int | None = None,
    ) -> None:
        self.instruments = tuple(instruments)
        self.models = models if models is not None else ModelTable.from_instruments(instruments)
        self.symbols = tuple(i.symbol for i in self.instruments)
        self.instrument_index = {symbol: ix for ix, symbol in enumerate(self.symbols)}
        self.assets = AssetTable(valuation_asset, collateral)
        settle: list[int] = []
        for instrument in self.instruments:
            asset_ix = self.assets.index.get(instrument.settle_asset)
            if asset_ix is None:
                raise ConfigError(
                    f"instrument {instrument.symbol} settles in {instrument.settle_asset}, which "
                    f"is neither the valuation asset nor a collateral asset; add it to collateral"
                )
            settle.append(asset_ix)
        n = len(self.instruments)
        self.settle_asset: Index = np.array(settle, dtype=np.intp)
        self.contracts = ContractTable(self.instruments)
        self.options = OptionState(n, len(self.contracts.underlying_symbols))
        self.contract_size: NDArray[np.float64] = np.array(self.models.contract_size)
        # Mark price per instrument: NaN until known. Until the first tick, the first
        # fill (or loaded entry) price stands in, so a position can be valued at all.
        self.mark: NDArray[np.float64] = np.full(n, np.nan)
        self.mark_ts: NDArray[np.int64] = np.full(n, -1, dtype=np.int64)
        self.accounts = AccountTable(widths={"balance": len(self.assets)})
        # Account ids by name, and the names by id (a view of the same compact index).
        self.account_index = NameIndex()
        self.account_names = self.account_index.by_id
        self.units = UnitTable()
        self.positions = PositionTable(n)
        self.applied_ids = SeenIds(idempotency_window_ms, idempotency_max_ids)
        # Rows whose figures must be recomputed (drained by the engine).
        self.stale_rows: set[int] = set()
        # False until an account may be in portfolio mode: a tick then need not look for
        # one among a million accounts (``PortfolioMargins.has_accounts``).
        self.maybe_portfolio = False

    # ------------------------------------------------------------------ identities

    def account(self, name: str) -> int:
        """The dense id of account ``name``, created (cross, empty wallet) if new."""
        ix = self.account_index.get(name)
        if ix is None:
            ix = self.accounts.append()
            self.account_index.add(name)  # the same id: names and accounts grow together
            self.accounts.cross_unit[ix] = self._new_unit(ix, NO_ROW)
        return ix

    def _new_unit(self, account_ix: int, row: int) -> int:
        unit = self.units.append()
        self.units.account[unit] = account_ix
        self.units.row[unit] = row
        return unit

    def unit_symbol(self, unit: int) -> str | None:
        """The symbol of an isolated unit's position; None for a cross unit."""
        row = int(self.units.row[unit])
        return None if row == NO_ROW else self.symbols[int(self.positions.instrument[row])]

    def units_of(self, account_ix: int) -> list[int]:
        """The account's cross unit, then its isolated units (in the order they were created)."""
        units = []
        unit = int(self.accounts.last_isolated[account_ix])
        while unit != NO_ROW:
            units.append(unit)
            unit = int(self.units.previous_isolated[unit])
        units.append(int(self.accounts.cross_unit[account_ix]))
        units.reverse()
        return units

    # ------------------------------------------------------------------ ledger

    def fill(
        self,
        account_ix: int,
        instrument_ix: int,
        delta: float,
        price: float,
        fee: float,
        fee_asset_ix: int,
    ) -> tuple[int, ...]:
        """Apply a trade of signed ``delta`` contracts; return the units it touched."""
        pos = self.positions
        row = pos.row_of(account_ix, instrument_ix)
        old = float(pos.qty[row])
        kind = int(self.contracts.kind[instrument_ix])
        contract_size = float(self.contract_size[instrument_ix])
        booking = trade_inverse if kind == INVERSE else trade
        new, entry, realised = booking(old, float(pos.entry[row]), delta, price, contract_size)
        if math.isnan(self.mark[instrument_ix]):
            self.mark[instrument_ix] = price
        settle = int(self.settle_asset[instrument_ix])
        wallet = self.accounts.balance[account_ix]
        # An option's premium moves cash now; its value at mark counts in equity.
        wallet[settle] += -delta * contract_size * price if kind == OPTION else realised
        wallet[fee_asset_ix] -= fee
        cross = int(self.accounts.cross_unit[account_ix])
        touched = {cross}
        if old != 0.0:
            touched.add(int(pos.unit[row]))
        isolated = (
            pos.unit[row] != cross
            if old != 0.0
            else self._opens_isolated(account_ix, instrument_ix)
        )
        if isolated:
            self._move_isolated_margin(row, old, new, price)
        pos.qty[row] = new
        pos.entry[row] = entry
        if old == 0.0 and new != 0.0:
            self._open(row, isolated)
        elif old != 0.0 and new == 0.0:
            self._close(row)
        if new != 0.0:
            touched.add(int(pos.unit[row]))
        self.stale_rows.add(row)
        return tuple(sorted(touched))

    def _opens_isolated(self, account_ix: int, instrument_ix: int) -> bool:
        if self.contracts.kind[instrument_ix] == OPTION:
            return False  # options are margined in the cross account only
        return bool(self.accounts.mode[account_ix] == ISOLATED)

    def _move_isolated_margin(self, row: int, old: float, new: float, price: float) -> None:
        """Release margin on a reduction, allocate initial margin on an increase."""
        pos = self.positions
        kept = old
        if old != 0.0:
            if new == 0.0 or (new > 0.0) != (old > 0.0):
                kept = 0.0
            elif abs(new) < abs(old):
                kept = new
            released = float(pos.isolated_margin[row]) * (1.0 - abs(kept) / abs(old))
            self._shift_isolated(row, -released)
        if abs(new) > abs(kept):
            ix = np.array([pos.instrument[row], pos.instrument[row]], dtype=np.intp)
            _, initial, _ = self.values(
                ix, np.array([kept, new]), np.full(2, price), np.full(2, pos.leverage[row]), price
            )
            self._shift_isolated(row, float(initial[1] - initial[0]))

    def _shift_isolated(self, row: int, amount: float) -> None:
        pos = self.positions
        settle = int(self.settle_asset[pos.instrument[row]])
        pos.isolated_margin[row] += amount
        self.accounts.balance[pos.account[row], settle] -= amount

    def _open(self, row: int, isolated: bool) -> None:
        pos = self.positions
        account = int(pos.account[row])
        if isolated:
            unit = int(pos.isolated_unit[row])
            if unit == NO_ROW:
                unit = self._new_unit(account, row)
                pos.isolated_unit[row] = unit
                self.units.previous_isolated[unit] = self.accounts.last_isolated[account]
                self.accounts.last_isolated[account] = unit
        else:
            unit = int(self.accounts.cross_unit[account])
        pos.link(row, unit, self.units.head)
        self.units.open_positions[unit] += 1
        pos.add_holder(row)

    def _close(self, row: int) -> None:
        pos = self.positions
        self.units.open_positions[pos.unit[row]] -= 1
        pos.unlink(row, self.units.head)
        pos.remove_holder(row)
        pos.isolated_margin[row] = 0.0

    def values(
        self,
        instrument: Index,
        qty: NDArray[np.float64],
        entry: NDArray[np.float64],
        leverage: NDArray[np.float64],
        mark: NDArray[np.float64] | float | None = None,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """(equity contribution, IM, MM) of positions in their settle asset, at the
        book's marks or at ``mark``; see ``monitor.book._contracts``."""
        marks = self.mark.take(instrument) if mark is None else np.broadcast_to(mark, qty.shape)
        return position_values(
            self.models,
            self.contracts,
            self.options,
            instrument,
            qty,
            entry,
            leverage,
            np.asarray(marks, dtype=np.float64),
        )

    def deliver(
        self, account_ix: int, instrument_ix: int, settlement_price: float
    ) -> tuple[int, ...]:
        """Close an option position at its intrinsic value at ``settlement_price``.

        The value (long: received, short: paid) moves to the wallet in the settle
        asset; no position (or one already delivered) is a no-op.
        """
        row = self.positions.rows.get((account_ix, instrument_ix), NO_ROW)
        if row == NO_ROW or self.positions.qty[row] == 0.0:
            return ()
        qty = float(self.positions.qty[row])
        ix = np.array([instrument_ix], dtype=np.intp)
        value = float(self.contracts.intrinsic(ix, np.array([settlement_price]))[0])
        size = qty * float(self.contract_size[instrument_ix])
        self.accounts.balance[account_ix, self.settle_asset[instrument_ix]] += size * value
        unit = int(self.positions.unit[row])
        self.positions.qty[row] = 0.0
        self.positions.entry[row] = 0.0
        self._close(row)
        self.stale_rows.add(row)
        return (unit,)

    def transfer(self, account_ix: int, asset_ix: int, amount: float) -> tuple[int, ...]:
        """Deposit (> 0) or withdraw (< 0) wallet collateral."""
        self.accounts.balance[account_ix, asset_ix] += amount
        return (int(self.accounts.cross_unit[account_ix]),)

    def funding(self, account_ix: int, instrument_ix: int, amount: float) -> tuple[int, ...]:
        """Credit (> 0) or debit (< 0) a funding payment in the settle asset."""
        row = self.positions.rows.get((account_ix, instrument_ix), NO_ROW)
        cross = int(self.accounts.cross_unit[account_ix])
        if row != NO_ROW and self.positions.qty[row] != 0.0 and self.positions.unit[row] != cross:
            self.positions.isolated_margin[row] += amount
            return (int(self.positions.unit[row]),)
        self.accounts.balance[account_ix, self.settle_asset[instrument_ix]] += amount
        return (cross,)

    def set_mode(self, account_ix: int, isolated: bool) -> None:
        """Margin mode for positions the account opens from flat from now on."""
        self.accounts.mode[account_ix] = ISOLATED if isolated else CROSS

    def set_margin_mode(self, account_ix: int, mode: str) -> tuple[int, ...]:
        """``cross``, ``isolated`` or ``portfolio``; returns the cross unit when it moves
        between standard and portfolio margin (its requirement changes at once)."""
        was_portfolio = self.accounts.mode[account_ix] == PORTFOLIO
        self.accounts.mode[account_ix] = {"isolated": ISOLATED, "portfolio": PORTFOLIO}.get(
            mode, CROSS
        )
        self.maybe_portfolio = self.maybe_portfolio or mode == "portfolio"
        if was_portfolio == (mode == "portfolio"):
            return ()
        return (int(self.accounts.cross_unit[account_ix]),)

    def set_leverage(self, account_ix: int, instrument_ix: int, leverage: float) -> tuple[int, ...]:
        """The account's chosen leverage on an instrument (changes its initial margin)."""
        row = self.positions.row_of(account_ix, instrument_ix)
        self.positions.leverage[row] = leverage
        if self.positions.qty[row] == 0.0:
            return ()
        self.stale_rows.add(row)
        return (int(self.positions.unit[row]),)

    def isolated_margin_problem(
        self, account_ix: int, instrument_ix: int, amount: float
    ) -> str | None:
        """Why moving ``amount`` to/from the isolated position cannot happen, or None."""
        row = self.positions.rows.get((account_ix, instrument_ix), NO_ROW)
        if (
            row == NO_ROW
            or self.positions.qty[row] == 0.0
            or self.positions.unit[row] == self.accounts.cross_unit[account_ix]
        ):
            return "not_isolated_position"
        if self.positions.isolated_margin[row] + amount < 0.0:
            return "insufficient_isolated_margin"
        return None

    def adjust_isolated(
        self, account_ix: int, instrument_ix: int, amount: float
    ) -> tuple[int, ...]:
        """Move ``amount`` from the wallet to the isolated position (< 0: back)."""
        row = self.positions.rows[(account_ix, instrument_ix)]
        self._shift_isolated(row, amount)
        return (int(self.accounts.cross_unit[account_ix]), int(self.positions.unit[row]))

    # ------------------------------------------------------------------ loading

    def set_balance(self, account_ix: int, asset_ix: int, amount: float) -> None:
        """Set a wallet balance outright (restoring or loading a snapshot)."""
        self.accounts.balance[account_ix, asset_ix] = amount

    def load_position(
        self,
        account_ix: int,
        instrument_ix: int,
        qty: float,
        entry_price: float,
        leverage: float = math.nan,
        isolated_margin: float | None = None,
    ) -> int:
        """Put an open position into the book as is (no fill, no wallet movement).

        ``isolated_margin`` given makes it an isolated position with that margin.
        Used by the what-if evaluator and by snapshot restore; returns the row.
        """
        row = self.positions.row_of(account_ix, instrument_ix)
        if self.positions.qty[row] != 0.0:
            raise InputError(
                f"account {self.account_names[account_ix]} already holds "
                f"{self.symbols[instrument_ix]}; give one position per instrument"
            )
        if qty == 0.0:
            raise InputError("a loaded position needs a non-zero qty")
        if isolated_margin is not None and self.contracts.kind[instrument_ix] == OPTION:
            raise InputError(
                f"{self.symbols[instrument_ix]} is an option: options are margined in the "
                "cross account; evaluate it in a cross account"
            )
        pos = self.positions
        pos.qty[row] = qty
        pos.entry[row] = entry_price
        pos.leverage[row] = leverage
        if math.isnan(self.mark[instrument_ix]):
            self.mark[instrument_ix] = entry_price
        self._open(row, isolated_margin is not None)
        pos.isolated_margin[row] = isolated_margin or 0.0
        self.stale_rows.add(row)
        return row
