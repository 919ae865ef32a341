"""Per-position and per-unit risk numbers for events and for ``Engine.account_risk``."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from monitor.book import NO_ROW, Book
from monitor.engine._contract_risk import position_greeks, threshold_prices
from monitor.engine._reduction import kept_fraction
from monitor.models import INVERSE, OPTION
from monitor.schema import PositionRisk, Reduction
from monitor.states import STATE_NAMES

__all__ = ["margin_ratio", "position_risks", "reductions", "unit_rows"]


def margin_ratio(equity: float, maintenance: float) -> float | None:
    """``MM / equity``; None (infinite: JSON has no infinity) when equity <= 0 and there is
    a requirement or a debt; 0 when there is neither."""
    if equity <= 0.0:
        return None if maintenance > 0.0 or equity < 0.0 else 0.0
    return maintenance / equity


def unit_rows(book: Book, unit: int) -> NDArray[np.intp]:
    """The open position rows of a unit, ordered by instrument."""
    pos = book.positions
    rows: list[int] = []
    row = int(book.units.head[unit])
    while row != NO_ROW:
        rows.append(row)
        row = int(pos.unit_next[row])
    array = np.array(rows, dtype=np.intp)
    return array[np.argsort(pos.instrument[array], kind="stable")]


def _optional(value: float) -> float | None:
    return None if math.isnan(value) else value


def position_risks(book: Book, unit: int) -> tuple[PositionRisk, ...]:
    """Each open position of the unit with its liquidation and bankruptcy prices.

    A position's prices move its own mark with every other price held still, against
    the unit's equity and the maintenance margin of the unit's other positions.
    """
    rows = unit_rows(book, unit)
    if rows.shape[0] == 0:
        return ()
    pos, units = book.positions, book.units
    instrument = pos.instrument[rows]
    qty = pos.qty[rows]
    mark = book.mark[instrument]
    value = book.assets.value[book.settle_asset[instrument]]
    equity = float(units.collateral[unit] + units.upnl[unit])
    with np.errstate(divide="ignore", invalid="ignore"):  # an unpriced settle asset
        other = (float(units.maintenance[unit]) - pos.maintenance[rows]) / value
        equity_settle = equity / value
    liquidation, bankruptcy = threshold_prices(
        book, instrument, qty, np.broadcast_to(equity_settle, qty.shape).copy(), other
    )
    isolated = units.row[unit] != NO_ROW
    notional = _notional(book, instrument, qty, mark) * value
    option = book.contracts.kind[instrument] == OPTION
    return tuple(
        PositionRisk(
            symbol=book.symbols[instrument[k]],
            qty=float(qty[k]),
            entry_price=float(pos.entry[row]),
            mark_price=float(mark[k]),
            notional=float(notional[k]),
            unrealized_pnl=float(
                qty[k] * book.contract_size[instrument[k]] * (mark[k] - pos.entry[row]) * value[k]
                if option[k]
                else pos.upnl[row]
            ),
            initial_margin=float(pos.initial[row]),
            maintenance_margin=float(pos.maintenance[row]),
            liquidation_price=_optional(float(liquidation[k])),
            bankruptcy_price=_optional(float(bankruptcy[k])),
            isolated_margin=float(pos.isolated_margin[row] * value[k]) if isolated else None,
            state=STATE_NAMES[units.state[unit]] if isolated else None,
            margin_ratio=margin_ratio(equity, float(units.maintenance[unit])) if isolated else None,
            mark_iv=_optional(float(book.options.vol[instrument[k]])) if option[k] else None,
            greeks=position_greeks(book, int(instrument[k]), float(qty[k])),
        )
        for k, row in enumerate(rows.tolist())
    )


def _notional(
    book: Book, instrument: NDArray[np.intp], qty: NDArray[np.float64], mark: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Notional in the settle asset: linear at mark, inverse in coin, options at market value."""
    notional = book.models.notional(instrument, qty, mark)
    if book.contracts.linear_only:
        return notional
    kind = book.contracts.kind[instrument]
    size = qty * book.contract_size[instrument]
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse_notional = np.abs(size) / mark
    notional = np.where(kind == INVERSE, inverse_notional, notional)
    result: NDArray[np.float64] = np.where(kind == OPTION, size * mark, notional)
    return result


def reductions(book: Book, unit: int) -> tuple[Reduction, ...]:
    """The smallest proportional reduction restoring the unit to initial margin."""
    rows = unit_rows(book, unit)
    if rows.shape[0] == 0:
        return ()
    pos = book.positions
    instrument = pos.instrument[rows]
    qty = pos.qty[rows]
    kept = kept_fraction(
        book,
        instrument,
        qty,
        book.mark[instrument],
        pos.leverage[rows],
        book.assets.value[book.settle_asset[instrument]],
        float(book.units.collateral[unit] + book.units.upnl[unit]),
    )
    if kept >= 1.0:
        return ()
    return tuple(
        Reduction(symbol=book.symbols[instrument[k]], qty=abs(float(qty[k])) * (1.0 - kept))
        for k in range(rows.shape[0])
    )
