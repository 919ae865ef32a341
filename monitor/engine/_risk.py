"""Per-position and per-unit risk numbers for events and for ``Engine.account_risk``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import msgspec
import numpy as np
from numpy.typing import NDArray

from monitor.book import NO_ROW, Book, Index
from monitor.engine._contract_risk import position_greeks, threshold_prices
from monitor.engine._reduction import kept_fractions
from monitor.engine._unit_kernels import unit_rows_of
from monitor.models import INVERSE, OPTION
from monitor.schema import PositionRisk, Reduction
from monitor.states import STATE_NAMES

__all__ = [
    "UnitRows",
    "margin_ratio",
    "position_risks",
    "position_risks_of",
    "reductions",
    "reductions_of",
    "unit_rows",
    "units_rows",
]


def margin_ratio(equity: float, maintenance: float) -> float | None:
    """``MM / equity``; None when equity <= 0, whatever MM is (infinite or undefined,
    and JSON has neither): an empty account with equity 0 has no ratio either."""
    if not equity > 0.0:
        return None
    return maintenance / equity


def unit_rows(book: Book, unit: int) -> Index:
    """The open position rows of a unit, ordered by instrument."""
    pos = book.positions
    rows: list[int] = []
    row = int(book.units.head[unit])
    while row != NO_ROW:
        rows.append(row)
        row = int(pos.unit_next[row])
    array = np.array(rows, dtype=np.intp)
    return array[np.argsort(pos.instrument[array], kind="stable")]


class UnitRows(NamedTuple):
    """The rows of several units end to end, each unit's as :func:`unit_rows` orders
    them: built once per cycle and read by every step of its events."""

    rows: Index
    counts: list[int]  # rows per unit
    starts: list[int]  # where each unit's rows start
    slot: Index  # each row's unit, as its place in the units

    @classmethod
    def of_lists(cls, rows_of: Sequence[Index]) -> UnitRows:
        """Those of units whose rows are ``rows_of``."""
        counts = [rows.shape[0] for rows in rows_of]
        rows = np.concatenate(rows_of) if rows_of else np.empty(0, dtype=np.intp)
        return cls._of(rows.astype(np.intp, copy=False), counts)

    @classmethod
    def _of(cls, rows: Index, counts: list[int]) -> UnitRows:
        starts = np.cumsum([0, *counts[:-1]]).tolist() if counts else []
        slot = np.repeat(np.arange(len(counts)), counts)
        return cls(rows, counts, starts, slot)

    def of(self, k: int) -> Index:
        """The rows of the ``k``-th unit."""
        return self.rows[self.starts[k] : self.starts[k] + self.counts[k]]

    def pick(self, ks: Sequence[int]) -> UnitRows:
        """Those of the ``ks``-th units, in that order."""
        return UnitRows.of_lists([self.of(k) for k in ks])


def units_rows(book: Book, units: Sequence[int]) -> UnitRows:
    """:func:`unit_rows` of each of ``units``, every row list walked at once."""
    if not units:
        return UnitRows.of_lists([])
    table, pos = book.units, book.positions
    slots, rows = unit_rows_of(np.array(units, dtype=np.intp), table.head, pos.unit_next)
    order = np.lexsort((pos.instrument[rows], slots))  # stable: ties keep list order
    counts = np.bincount(slots, minlength=len(units)).tolist()
    return UnitRows._of(rows[order].astype(np.intp, copy=False), counts)


def _optional(value: float) -> float | None:
    return None if math.isnan(value) else value


def position_risks(book: Book, unit: int) -> tuple[PositionRisk, ...]:
    """Each open position of the unit with its liquidation and bankruptcy prices.

    A position's prices move its own mark, against the unit's equity and the
    maintenance margin of the unit's other positions. Every other price is held
    still, except what the mark itself prices: collateral assets whose
    ``price_symbol`` is the instrument (BTC collateral valued by ``BTCUSDT``), and
    other positions settling in such an asset, move with it (:func:`_exposures`).
    """
    return position_risks_of(book, [unit], UnitRows.of_lists([unit_rows(book, unit)]))[0]


def position_risks_of(
    book: Book, units: Sequence[int], of: UnitRows
) -> list[tuple[PositionRisk, ...]]:
    """:func:`position_risks` of each of ``units``, whose rows are ``of``: one vectorised
    pass over all their positions, so a cycle with many transitions (a crash) pays the
    arithmetic once, not once per event. Every figure is an elementwise function of its
    position and its unit: the same, to the bit, as one unit at a time."""
    rows, counts, slot = of.rows, of.counts, of.slot
    if rows.shape[0] == 0:
        return [() for _ in units]
    pos, table = book.positions, book.units
    unit_ids = np.array(units, dtype=np.intp)
    owner = unit_ids[slot]
    instrument = pos.instrument[rows]
    qty = pos.qty[rows]
    mark = book.mark[instrument]
    value = book.assets.value[book.settle_asset[instrument]]
    unit_equity = table.collateral[unit_ids] + table.upnl[unit_ids]
    equity = np.repeat(unit_equity, counts)
    other = table.maintenance[owner] - pos.maintenance[rows]
    moves = _exposures_of(book, units, of)
    equity_at, other_at = equity + moves.equity_shift, other + moves.maintenance_shift
    signed_size = qty * book.contract_size[instrument]
    with np.errstate(divide="ignore", invalid="ignore"):  # an unpriced settle asset
        equity_settle = equity_at / value
        other_settle = other_at / value
        exposures = (
            signed_size + (moves.equity_slope - moves.maintenance_slope) / value,
            signed_size + moves.equity_slope / value,
        )
        liquidation, bankruptcy = threshold_prices(
            book, instrument, qty, equity_settle, other_settle, exposures
        )
    isolated = table.row[owner] != NO_ROW
    notional = _notional(book, instrument, qty, mark) * value
    option = book.contracts.kind[instrument] == OPTION
    entry = pos.entry[rows]
    option_upnl = qty * book.contract_size[instrument] * (mark - entry) * value
    upnl = np.where(option, option_upnl, pos.upnl[rows])
    isolated_margin = pos.isolated_margin[rows] * value
    symbols = book.symbols
    # NaN (no such price) as None, a list at a time: a call per position cost more than
    # building its message did in a crash's hundreds of thousands.
    columns = zip(
        [symbols[ix] for ix in instrument.tolist()], qty.tolist(), entry.tolist(),
        mark.tolist(), notional.tolist(), upnl.tolist(), pos.initial[rows].tolist(),
        pos.maintenance[rows].tolist(), [None if p != p else p for p in liquidation.tolist()],
        [None if p != p else p for p in bankruptcy.tolist()], strict=True,
    )  # fmt: skip
    risks = [
        PositionRisk(
            symbol=symbol,
            qty=q,
            entry_price=e,
            mark_price=m,
            notional=n,
            unrealized_pnl=u,
            initial_margin=im,
            maintenance_margin=mm,
            liquidation_price=liq,
            bankruptcy_price=bank,
        )
        for symbol, q, e, m, n, u, im, mm, liq, bank in columns
    ]
    # Isolated positions carry their unit's margin and state, options their volatility
    # and greeks: few in a crash, set on those alone.
    for k in np.flatnonzero(isolated | option).tolist():
        at, ix, q = int(slot[k]), int(instrument[k]), float(qty[k])
        unit = units[at]
        alone, is_option = bool(isolated[k]), bool(option[k])
        risks[k] = msgspec.structs.replace(
            risks[k],
            isolated_margin=float(isolated_margin[k]) if alone else None,
            state=STATE_NAMES[table.state[unit]] if alone else None,
            margin_ratio=(
                margin_ratio(float(unit_equity[at]), float(table.maintenance[unit]))
                if alone
                else None
            ),
            mark_iv=_optional(float(book.options.vol[ix])) if is_option else None,
            greeks=position_greeks(book, ix, q) if is_option else None,
        )
    return [
        tuple(risks[start : start + count]) for start, count in zip(of.starts, counts, strict=True)
    ]


def _exposures_of(book: Book, units: Sequence[int], of: UnitRows) -> _Exposures:
    """:func:`_exposures` of each unit, end to end as ``of`` holds their rows; zeros for a
    unit none of whose instruments prices anything (most units, found at once)."""
    n = of.rows.shape[0]
    result = _Exposures(np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n))
    price_symbols = book.assets.price_symbols
    if not price_symbols:
        return result
    linked = np.array([bool(price_symbols.get(symbol)) for symbol in book.symbols], dtype=bool)
    held = np.bincount(of.slot, linked[book.positions.instrument[of.rows]], minlength=len(units))
    for k in np.flatnonzero(held).tolist():
        start, stop = of.starts[k], of.starts[k] + of.counts[k]
        one = _exposures(book, units[k], of.rows[start:stop])
        for column, part in zip(result, one, strict=True):
            column[start:stop] = part
    return result


class _Exposures(NamedTuple):
    """Per position of a unit, in the valuation asset: how the unit's figures move with
    that position's mark ``m`` besides the position itself.

    ``equity(P) = equity + equity_shift + equity_slope * (P - m)`` and the other
    positions' maintenance margin is ``other + maintenance_shift + maintenance_slope *
    (P - m)``. The shifts re-price what the mark prices at ``m`` exactly (a collateral
    price or settle value that is not yet the mark, e.g. an asset not priced yet).
    """

    equity_shift: NDArray[np.float64]
    maintenance_shift: NDArray[np.float64]
    equity_slope: NDArray[np.float64]
    maintenance_slope: NDArray[np.float64]


def _exposures(book: Book, unit: int, rows: Index) -> _Exposures:
    """What else in ``unit`` each position's mark prices (see :class:`_Exposures`).

    A cross unit's wallet balance ``b`` in an asset priced by the mark is worth
    ``b x (1 - haircut) x P`` (``b x P`` for a debt); another position settling in such
    an asset has settle-asset uPnL and MM that are worth that many times ``P``. An
    instrument whose own settle asset is priced by its own mark is not linear in ``P``
    in the valuation asset; it is left to the plain solve (everything else still).
    """
    n = rows.shape[0]
    zeros = np.zeros(n)
    result = _Exposures(zeros, zeros.copy(), zeros.copy(), zeros.copy())
    assets, pos = book.assets, book.positions
    instrument = pos.instrument[rows]
    linked = [assets.price_symbols.get(book.symbols[ix], []) for ix in instrument.tolist()]
    if not any(linked):
        return result
    settle = book.settle_asset[instrument]
    mark = book.mark[instrument]
    # Each position's contribution to the unit's equity and MM in its settle asset (any
    # contract kind). A position whose settle asset is not priced yet counts 0 now and
    # is left out.
    settle_value = assets.value[settle]
    priced = settle_value > 0.0
    settle_upnl = np.divide(pos.upnl[rows], settle_value, out=np.zeros(n), where=priced)
    settle_mm = np.divide(pos.maintenance[rows], settle_value, out=np.zeros(n), where=priced)
    cross = book.units.row[unit] == NO_ROW
    balances = book.accounts.balance[book.units.account[unit]]
    for k, assets_k in enumerate(linked):
        if not assets_k or settle[k] in assets_k:
            continue
        m = float(mark[k])
        for asset in assets_k:
            if cross and balances[asset]:
                amount = float(balances[asset])
                worth = amount - max(amount, 0.0) * float(assets.haircut[asset])
                result.equity_slope[k] += worth
                result.equity_shift[k] += worth * (m - float(assets.value[asset]))
            others = np.flatnonzero(settle == asset)
            for j in others[others != k].tolist():
                gap = m - float(assets.value[asset])
                result.equity_slope[k] += settle_upnl[j]
                result.equity_shift[k] += settle_upnl[j] * gap
                result.maintenance_slope[k] += settle_mm[j]
                result.maintenance_shift[k] += settle_mm[j] * gap
    return result


def _notional(
    book: Book, instrument: Index, qty: NDArray[np.float64], mark: NDArray[np.float64]
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


def reductions(book: Book, unit: int, rows: Index | None = None) -> tuple[Reduction, ...]:
    """The smallest proportional reduction restoring the unit to initial margin.
    ``rows``: the unit's (:func:`unit_rows`), when the caller has them."""
    rows = unit_rows(book, unit) if rows is None else rows
    return reductions_of(book, [unit], UnitRows.of_lists([rows]))[0]


def reductions_of(book: Book, units: Sequence[int], of: UnitRows) -> list[tuple[Reduction, ...]]:
    """:func:`reductions` of each of ``units``, whose rows are ``of``: the kept fractions
    of all of them solved together (``kept_fractions``)."""
    rows, counts = of.rows, of.counts
    if rows.shape[0] == 0:
        return [() for _ in units]
    pos, table = book.positions, book.units
    unit_ids = np.array(units, dtype=np.intp)
    instrument = pos.instrument[rows]
    qty = pos.qty[rows]
    kept = kept_fractions(
        book,
        of.slot,
        instrument,
        qty,
        book.mark[instrument],
        pos.leverage[rows],
        book.assets.value[book.settle_asset[instrument]],
        table.collateral[unit_ids] + table.upnl[unit_ids],
    ).tolist()
    symbols = [book.symbols[ix] for ix in instrument.tolist()]
    sizes = np.abs(qty).tolist()
    out: list[tuple[Reduction, ...]] = []
    for at, (start, count) in enumerate(zip(of.starts, counts, strict=True)):
        share = 1.0 - kept[at]
        out.append(
            ()
            if kept[at] >= 1.0
            else tuple(
                Reduction(symbol=symbols[k], qty=sizes[k] * share)
                for k in range(start, start + count)
            )
        )
    return out
