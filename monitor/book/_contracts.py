"""What a position of any contract kind is worth and needs, in its settle asset.

* linear: ``qty x contract_size x (mark - entry)``; IM/MM from the instrument's model on
  the notional ``|qty| x contract_size x mark`` (quote asset);
* inverse: ``qty x contract_size x (1/entry - 1/mark)`` in the coin (Deribit, BitMEX:
  contracts of ``contract_size`` USD); IM/MM from the model on the coin notional
  ``|qty| x contract_size / mark``, which is also the size size-scaled rates grow with;
* option: its market value ``qty x contract_size x mark`` (premium-paid accounting: the
  premium moved cash when traded, so long options add and short options subtract their
  value, the venue's convention); a short needs ``|qty| x contract_size`` times its
  instrument's short margin per base unit, priced once per instrument.

Also the trade arithmetic of inverse positions and the option state per instrument
(volatility, Greeks, short margin, valuation time) and per underlying (price).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from monitor.book._columns import Index
from monitor.book._positions import FLAT_QTY_REL
from monitor.models import INVERSE, LINEAR, OPTION, ContractTable, ModelTable

__all__ = ["OptionState", "position_values", "trade_inverse"]

Array = NDArray[np.float64]


class OptionState:
    """Per option instrument: volatility, valuation time, Greeks and short margin per base
    unit; per underlying: price and time. NaN until known."""

    def __init__(self, n_instruments: int, n_underlyings: int) -> None:
        self.vol = np.full(n_instruments, np.nan)
        self.value_ts = np.full(n_instruments, -1, dtype=np.int64)
        self.greeks = np.zeros((n_instruments, 4))
        self.short_initial = np.zeros(n_instruments)
        self.short_maintenance = np.zeros(n_instruments)
        self.underlying_price = np.full(n_underlyings, np.nan)
        self.underlying_ts = np.full(n_underlyings, -1, dtype=np.int64)


def position_values(
    models: ModelTable,
    contracts: ContractTable,
    options: OptionState,
    instrument: Index,
    qty: Array,
    entry: Array,
    leverage: Array,
    mark: Array,
) -> tuple[Array, Array, Array]:
    """(equity contribution, IM, MM) of positions, in each one's settle asset."""
    if contracts.linear_only:
        upnl = qty * models.contract_size.take(instrument)
        upnl *= mark - entry
        initial, maintenance = models.requirements(instrument, qty, mark, leverage)
        return upnl, initial, maintenance
    n = qty.shape[0]
    value, initial, maintenance = np.empty(n), np.empty(n), np.empty(n)
    kind = contracts.kind.take(instrument)
    for code in (LINEAR, INVERSE, OPTION):
        rows = _rows_of(kind, code)
        if rows is None:
            continue
        ix, q, m = instrument[rows], qty[rows], mark[rows]
        size = q * models.contract_size.take(ix)
        if code == OPTION:
            value[rows] = size * m
            short = np.maximum(-size, 0.0)
            initial[rows] = short * options.short_initial.take(ix)
            maintenance[rows] = short * options.short_maintenance.take(ix)
        elif code == INVERSE:
            with np.errstate(divide="ignore", invalid="ignore"):
                # A flat row keeps entry 0: its value is 0, not 0 x inf.
                pnl = size * (1.0 / entry[rows] - 1.0 / m)
                value[rows] = np.where(size == 0.0, 0.0, pnl)
                coin_notional = np.abs(size) / m
            initial[rows], maintenance[rows] = models.requirements_from_notional(
                ix, coin_notional, coin_notional, leverage[rows]
            )
        else:
            value[rows] = size * (m - entry[rows])
            initial[rows], maintenance[rows] = models.requirements(ix, q, m, leverage[rows])
    return value, initial, maintenance


def _rows_of(kind: NDArray[np.int8], code: int) -> slice | Index | None:
    """The positions of one contract kind: all of them (a slice, no copy), some, or none."""
    match = kind == code
    count = int(np.count_nonzero(match))
    if count == 0:
        return None
    if count == kind.shape[0]:
        return slice(None)
    return np.flatnonzero(match)


def trade_inverse(
    qty: float, entry: float, delta: float, price: float, contract_size: float
) -> tuple[float, float, float]:
    """Apply a trade of signed ``delta`` contracts at ``price`` to an inverse position.

    Returns ``(qty, entry, realised)`` with realised PnL in the coin. Increasing
    averages the entry harmonically (contracts per price add up: the coin value of the
    position at entry is preserved), reducing realises
    ``closed x contract_size x (1/entry - 1/price)`` with the position's sign, going
    through zero opens the remainder at ``price``. BitMEX and Deribit account inverse
    contracts this way.
    """
    new_qty = qty + delta
    if abs(new_qty) <= FLAT_QTY_REL * max(abs(qty), abs(delta)):
        new_qty = 0.0
    if qty == 0.0 or (qty > 0.0) == (delta > 0.0):
        new_entry = abs(new_qty) / (abs(qty) / entry + abs(delta) / price) if qty else price
        return new_qty, new_entry, 0.0
    closed = min(abs(delta), abs(qty))
    side = 1.0 if qty > 0.0 else -1.0
    realised = side * closed * contract_size * (1.0 / entry - 1.0 / price)
    if new_qty == 0.0:
        return 0.0, 0.0, realised
    if (new_qty > 0.0) != (qty > 0.0):
        return new_qty, price, realised
    return new_qty, entry, realised
