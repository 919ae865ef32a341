"""The flat position table, its per-instrument holder index and its per-unit row lists.

One row per (account, instrument) ever traded; a flat position keeps its row (qty 0)
so that its leverage and isolated unit survive it, but it leaves the holder index and its
margin unit's row list, so a price tick touches only open positions.

* Holders: per instrument, the rows holding it (``monitor.book._holders``), with each
  row's slot (``holder_slot``) so that removal is O(1) by moving the last entry into
  the gap, and a summary of the rows' price bands per block of slots.
* Unit rows: a doubly linked list per margin unit (``unit_next``/``unit_prev``,
  head kept by the unit table); walking all lists of a set of units at once costs
  one vectorised step per position of the largest unit, which is bounded by the
  number of instruments.
"""

from __future__ import annotations

from typing import ClassVar, Final

import numpy as np
from numpy.typing import NDArray

from monitor.book._columns import ID, Columns, Ids, Index
from monitor.book._holders import Holders
from monitor.book._row_index import RowIndex

__all__ = ["FLAT_QTY_REL", "PositionTable", "trade"]

# A position whose size falls within this fraction of the sizes it came from is flat:
# venues trade decimal lots, which float arithmetic leaves as dust (0.1 + 0.2 - 0.3).
FLAT_QTY_REL: Final = 1e-12

NO_ROW: Final = -1


def trade(
    qty: float, entry: float, delta: float, price: float, contract_size: float
) -> tuple[float, float, float]:
    """Apply a trade of signed ``delta`` contracts at ``price`` to a linear position.

    Returns ``(qty, entry, realised)``: increasing moves the average entry price
    (size-weighted), reducing realises ``closed * contract_size * (price - entry)``
    on the closed part (sign of the position) and keeps the entry, and going through
    zero closes the old side and opens the remainder at ``price``. This is how
    Binance and Bybit account USDⓈ-margined positions.
    """
    new_qty = qty + delta
    if abs(new_qty) <= FLAT_QTY_REL * max(abs(qty), abs(delta)):
        new_qty = 0.0
    if qty == 0.0 or (qty > 0.0) == (delta > 0.0):
        new_entry = (abs(qty) * entry + abs(delta) * price) / abs(new_qty)
        return new_qty, new_entry, 0.0
    closed = min(abs(delta), abs(qty))
    side = 1.0 if qty > 0.0 else -1.0
    realised = side * closed * contract_size * (price - entry)
    if new_qty == 0.0:
        return 0.0, 0.0, realised
    if (new_qty > 0.0) != (qty > 0.0):
        return new_qty, price, realised
    return new_qty, entry, realised


class PositionTable(Columns):
    """Positions: ``(account, instrument) -> row`` at the edge, columns by row id.

    Amounts (``isolated_margin``) are in the instrument's settle asset (realised PnL goes
    to the wallet, none is kept per position: nothing the monitor judges reads it);
    ``upnl``/``initial``/``maintenance`` are cached figures in the valuation asset, kept
    side by side in ``figures`` because a tick reads them together for scattered rows.
    ``unit`` is the margin unit the position counts in while open (-1 when flat);
    ``isolated_unit`` is the row's own unit, created the first time it opens isolated.
    """

    SPEC: ClassVar = {
        "account": (ID, -1, 0),
        "instrument": (ID, -1, 0),
        "qty": (np.float64, 0.0, 0),
        "entry": (np.float64, 0.0, 0),
        "leverage": (np.float64, np.nan, 0),
        "isolated_margin": (np.float64, 0.0, 0),
        "unit": (ID, NO_ROW, 0),
        "isolated_unit": (ID, NO_ROW, 0),
        "figures": (np.float64, 0.0, 3),  # upnl, initial, maintenance: one cache line
        "unit_next": (ID, NO_ROW, 0),
        "unit_prev": (ID, NO_ROW, 0),
        "holder_slot": (ID, NO_ROW, 0),
        # The prices of the instrument within which the row's unit cannot change state
        # (``monitor.engine._band_kernels``); +inf/-inf: none, judge at every move.
        "band_low": (np.float32, np.inf, 0),
        "band_high": (np.float32, -np.inf, 0),
    }

    account: Ids
    instrument: Ids
    qty: NDArray[np.float64]
    entry: NDArray[np.float64]
    leverage: NDArray[np.float64]
    isolated_margin: NDArray[np.float64]
    unit: Ids
    isolated_unit: Ids
    figures: NDArray[np.float64]
    unit_next: Ids
    unit_prev: Ids
    holder_slot: Ids
    band_low: NDArray[np.float32]
    band_high: NDArray[np.float32]

    def __init__(self, n_instruments: int, capacity: int = 64) -> None:
        super().__init__(capacity)
        self.rows = RowIndex(n_instruments)
        self.holders = Holders(n_instruments)

    @property
    def upnl(self) -> NDArray[np.float64]:
        """Cached unrealised PnL per row (a view of ``figures``)."""
        return self.figures[:, 0]

    @property
    def initial(self) -> NDArray[np.float64]:
        """Cached initial margin per row (a view of ``figures``)."""
        return self.figures[:, 1]

    @property
    def maintenance(self) -> NDArray[np.float64]:
        """Cached maintenance margin per row (a view of ``figures``)."""
        return self.figures[:, 2]

    def row_of(self, account_ix: int, instrument_ix: int) -> int:
        """The row of (account, instrument), created flat if it does not exist."""
        key = (account_ix, instrument_ix)
        row = self.rows.get(key)
        if row is None:
            row = self.append()
            self.account[row] = account_ix
            self.instrument[row] = instrument_ix
            self.rows[key] = row
        return row

    @property
    def open_count(self) -> int:
        """Open (non-flat) positions."""
        return int(self.holder_count.sum())

    # ------------------------------------------------------------------ holders

    @property
    def holder_count(self) -> Index:
        """Per instrument, how many rows hold it."""
        return self.holders.count

    def holders_of(self, instrument_ix: int) -> Index:
        """Rows with an open position in the instrument (a view; copy to keep it)."""
        return self.holders.of(instrument_ix)

    def add_holder(self, row: int) -> None:
        """List an opening row: with no band (flagged at the next move of its mark) until
        its unit is judged and banded, whatever band it had when it last closed (a band
        left wide open, for a unit judged on every move, must not outlive that unit's
        flag)."""
        self.band_low[row] = np.inf
        self.band_high[row] = -np.inf
        self.holders.add(
            int(self.instrument[row]), row, self.holder_slot, self.band_low, self.band_high
        )

    def remove_holder(self, row: int) -> None:
        self.holders.remove(
            int(self.instrument[row]), row, self.holder_slot, self.band_low, self.band_high
        )

    def set_holders(self, instrument_ix: int, rows: Index) -> None:
        """Replace an instrument's holders wholesale (bulk loading)."""
        self.holders.replace(instrument_ix, rows, self.holder_slot, self.band_low, self.band_high)

    def drop_bands(self) -> None:
        """No row has a band: every holder is judged at the next move of its mark. Rows
        beyond ``size`` hold the defaults already (no band); the spare capacity is left
        unwritten, so not resident."""
        self.band_low[: self.size] = np.inf
        self.band_high[: self.size] = -np.inf
        self.holders.scan_everything()

    # ------------------------------------------------------------------ unit row lists

    def link(self, row: int, unit: int, unit_head: Index) -> None:
        """Put ``row`` at the head of ``unit``'s row list."""
        head = int(unit_head[unit])
        self.unit[row] = unit
        self.unit_prev[row] = NO_ROW
        self.unit_next[row] = head
        if head != NO_ROW:
            self.unit_prev[head] = row
        unit_head[unit] = row

    def unlink(self, row: int, unit_head: Index) -> None:
        """Take ``row`` out of its unit's row list."""
        unit = int(self.unit[row])
        prev, nxt = int(self.unit_prev[row]), int(self.unit_next[row])
        if prev == NO_ROW:
            unit_head[unit] = nxt
        else:
            self.unit_next[prev] = nxt
        if nxt != NO_ROW:
            self.unit_prev[nxt] = prev
        self.unit[row] = NO_ROW
        self.unit_next[row] = NO_ROW
        self.unit_prev[row] = NO_ROW
