"""The venue's live exposure: bad debt now, liquidation exposure, open interest.

Computed from the book's cached figures in a few array passes (no per-account loop), so
the service can export it every second. Amounts are in the valuation asset.

* **Bad debt** is what bankrupt units owe beyond their collateral: ``max(0, -equity)``
  summed over units in state ``bankrupt``. Split per settle asset and per underlying
  (an instrument's ``base``) by each open position's share of its unit's maintenance
  margin.
* **Liquidation exposure** is the notional of positions in units in ``liquidation``,
  each weighted by how far its unit has gone from the liquidation threshold towards
  bankruptcy, ``(MM - equity) / MM`` clipped to [0, 1]: 0 at the threshold, 1 at
  bankruptcy. It is what the liquidation engine still has to work off, scaled by how
  likely it is to end as bad debt.
* **Open interest** per instrument is the long side: the sum of long quantities times
  the contract size (base units; contracts x contract size for options and inverse).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import numpy as np

from monitor.engine._engine import Engine
from monitor.engine._risk import _notional
from monitor.states import BANKRUPT, LIQUIDATION

__all__ = ["Exposure", "exposure"]


class Exposure(msgspec.Struct, frozen=True, kw_only=True):
    """The book's exposure now (see the module docstring); keyed by asset, base or symbol."""

    bad_debt: float
    bankrupt_units: int
    bad_debt_by_settle_asset: dict[str, float]
    bad_debt_by_underlying: dict[str, float]
    liquidation_exposure: float
    liquidation_units: int
    liquidation_exposure_by_underlying: dict[str, float]
    open_interest: dict[str, float]


_ROW_BLOCK = 1 << 18  # rows per step of the open-interest pass: bounded temporaries


def exposure(engine: Engine, pause: Callable[[], None] = lambda: None) -> Exposure:
    """The exposure of ``engine``'s book at its current figures and states.

    Only units in liquidation or bankrupt (a few, on a normal day) and their rows are
    gathered; open interest is summed over the rows a block at a time. Beyond those, a
    pass holds two masks over the units and one over the rows (a few MB at a million
    accounts, where arrays over every unit took about 80 MB): this runs every few
    seconds in a worker thread beside the stress, which calls ``pause`` between blocks
    of rows and between the passes (it steps aside there while a cycle runs)."""
    book = engine.book
    units, pos = book.units, book.positions
    n_units, n_rows = units.size, pos.size
    state = units.state[:n_units]
    bankrupt, liquidating = state == BANKRUPT, state == LIQUIDATION
    troubled_units = np.flatnonzero(bankrupt | liquidating)  # ascending
    equity = units.collateral[troubled_units] + units.upnl[troubled_units]
    maintenance = units.maintenance[troubled_units]
    in_liquidation = state[troubled_units] == LIQUIDATION
    shortfall = np.where(in_liquidation, 0.0, np.maximum(0.0, -equity))
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(maintenance > 0.0, (maintenance - equity) / maintenance, 1.0)
    depth = np.clip(depth, 0.0, 1.0)

    # The rows of troubled units. A flat row's unit is NO_ROW, -1: the mask's extra last
    # entry, always False.
    troubled = np.zeros(n_units + 1, dtype=np.bool_)
    troubled[troubled_units] = True
    pause()
    rows = np.flatnonzero(troubled[pos.unit[:n_rows]])
    which = np.searchsorted(troubled_units, pos.unit[rows])  # the row's unit among them
    instrument = pos.instrument[rows]
    row_mm = pos.maintenance[rows]
    unit_mm = maintenance[which]
    share = np.divide(row_mm, unit_mm, out=np.zeros_like(row_mm), where=unit_mm > 0.0)
    debt = shortfall[which] * share
    value = book.assets.value[book.settle_asset[instrument]]
    notional = np.abs(_notional(book, instrument, pos.qty[rows], book.mark[instrument])) * value
    exposed = np.where(in_liquidation[which], notional * depth[which], 0.0)

    settle = book.settle_asset[instrument]
    by_asset = np.bincount(settle, weights=debt, minlength=len(book.assets))
    bases = sorted({i.base for i in book.instruments})
    base_ix = np.array([bases.index(i.base) for i in book.instruments], dtype=np.intp)
    row_base = base_ix[instrument] if rows.size else np.empty(0, dtype=np.intp)
    debt_by_base = np.bincount(row_base, weights=debt, minlength=len(bases))
    exposed_by_base = np.bincount(row_base, weights=exposed, minlength=len(bases))
    pause()
    return Exposure(
        bad_debt=float(shortfall.sum()),
        bankrupt_units=int(np.count_nonzero(bankrupt)),
        bad_debt_by_settle_asset={
            name: float(by_asset[k]) for k, name in enumerate(book.assets.names)
        },
        bad_debt_by_underlying={base: float(debt_by_base[k]) for k, base in enumerate(bases)},
        liquidation_exposure=float(exposed.sum()),
        liquidation_units=int(np.count_nonzero(liquidating)),
        liquidation_exposure_by_underlying={
            base: float(exposed_by_base[k]) for k, base in enumerate(bases)
        },
        open_interest=_open_interest(engine, pause),
    )


def _open_interest(engine: Engine, pause: Callable[[], None]) -> dict[str, float]:
    """Per instrument, long quantities times the contract size (flat rows add 0)."""
    book = engine.book
    pos, n_rows = book.positions, book.positions.size
    interest = np.zeros(len(book.symbols))
    for first in range(0, n_rows, _ROW_BLOCK):
        block = slice(first, min(first + _ROW_BLOCK, n_rows))
        instrument = pos.instrument[block]
        longs = np.maximum(pos.qty[block], 0.0) * book.contract_size[instrument]
        interest += np.bincount(instrument, weights=longs, minlength=len(book.symbols))
        pause()
    return {symbol: float(interest[k]) for k, symbol in enumerate(book.symbols)}
