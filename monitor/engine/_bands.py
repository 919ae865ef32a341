"""Price bands in the engine: which units a tick must judge, and bands kept up to date.

With bands (``EngineConfig.price_bands``, books of linear contracts), the cached figures of
a unit are those of the marks it was last judged at: a tick revalues only the units with
a row whose mark left its band (``monitor.engine._band_kernels``), so their state is
exactly what a full revaluation would give, and the others' is provably unchanged.
Whoever reads figures of other units brings them up to date first (:func:`revalue`:
``Engine.account_risk``, the verify sweep); the solvency stress revalues its own copy.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from monitor.book import COLLATERAL, Book, Index
from monitor.engine import _kernels
from monitor.engine._band_kernels import band_units, band_units_reference
from monitor.engine._flag_kernels import (
    CHECK,
    FORCE,
    admit_bands,
    admit_bands_reference,
    flag_holders,
    flag_holders_reference,
    flag_unbanded,
    flag_unbanded_reference,
)
from monitor.engine._revalue import unit_collateral_of
from monitor.engine._unit_kernels import revalue_units_reference
from monitor.engine._width_units import revalue_units
from monitor.states import LIQUIDATION

__all__ = ["FlagScratch", "band", "drop", "flagged_units", "revalue"]


def flagged_units(book: Book, moved: Index, forced: Index, scratch: FlagScratch) -> Index:
    """The units (sorted, distinct) with an open row of an instrument in ``forced``, or of
    one in ``moved`` whose mark is outside the row's band, and the unbanded units with an
    open row of either.

    Only the blocks of holders whose band summary does not hold the new mark strictly
    inside are read (``monitor.book._holders``): a tick that moves every instrument a
    little reads a few blocks, not every open position; one that leaves many bands
    reads every row once, in memory order. The unbanded units (``UnitTable.unbanded``:
    in liquidation or bankrupt, say) are found by their flag, their row lists walked.
    """
    pos = book.positions
    mode = np.zeros(len(book.symbols), dtype=np.int8)
    mode[moved] = CHECK
    mode[forced] = FORCE
    holders = pos.holders
    if not holders.count[mode != 0].any():
        return np.empty(0, dtype=np.intp)
    flagged, out = scratch.sized(book.units.size)
    kernel = flag_holders if _kernels.ENABLED else flag_holders_reference
    count = kernel(
        mode, holders.rows, holders.start, holders.count, pos.instrument[: pos.size],
        pos.holder_slot, pos.unit, pos.band_low, pos.band_high, book.mark,
        holders.block_low, holders.block_high, flagged, out,
    )  # fmt: skip
    table = book.units
    if table.unbanded_count:
        candidates = table.unbanded_ids
        if candidates is None:  # a flag changed since the last tick: read them again
            candidates = table.unbanded_ids = np.flatnonzero(table.unbanded[: table.size])
        kernel = flag_unbanded if _kernels.ENABLED else flag_unbanded_reference
        count = kernel(
            mode, candidates, table.head, pos.unit_next, pos.instrument, flagged, out, count
        )
    if count * 16 >= table.size:  # many: read the flags back in order (a sort took 6x)
        units = np.flatnonzero(flagged[: table.size])
        flagged[: table.size] = False  # all False again for the next tick
        return units
    units = np.sort(out[:count])
    flagged[units] = False
    return units


class FlagScratch:
    """Per unit, whether a tick flagged it, and the flagged units' list: kept between an
    engine's ticks and cleared where set, so a tick pays for the units it flags, not for
    a million (and pages never written are not resident)."""

    def __init__(self) -> None:
        self.flagged = np.zeros(0, dtype=np.bool_)
        self.out = np.zeros(0, dtype=np.intp)

    def sized(self, units: int) -> tuple[NDArray[np.bool_], Index]:
        if self.flagged.shape[0] < units:
            size = max(units, 2 * self.flagged.shape[0])
            self.flagged, self.out = np.zeros(size, dtype=np.bool_), np.zeros(size, dtype=np.intp)
        return self.flagged, self.out


def revalue(book: Book, units: Index, with_collateral: bool) -> None:
    """Revalue every open row of ``units`` at the current marks and sum them along each
    unit's row list (and the units' collateral, with ``with_collateral``)."""
    if units.shape[0] == 0:
        return
    pos, table = book.positions, book.units
    layout = book.models.layout
    kernel = revalue_units if _kernels.ENABLED else revalue_units_reference
    kernel(
        units, table.head, pos.unit_next, pos.instrument, pos.qty, pos.entry, pos.leverage,
        book.mark, layout.contract_size, book.assets.value.take(book.settle_asset),
        layout.n_tiers, layout.floors, layout.mmr, layout.imr, layout.cum, layout.mm_slope,
        layout.im_slope, pos.figures, table.figures,
    )  # fmt: skip
    if with_collateral:
        table.figures[units, COLLATERAL] = unit_collateral_of(book, units)


def band(
    book: Book,
    units: Index,
    portfolio: NDArray[np.bool_],
    margin_call_ratio: float,
    hysteresis: float,
) -> None:
    """Set the bands of the rows of ``units``, just revalued and judged. A unit in
    liquidation or bankrupt, or portfolio-margined (``portfolio``, per entry of
    ``units``), gets none: it is unbanded, judged whenever one of its marks moves."""
    if units.shape[0] == 0:
        return
    pos, table = book.positions, book.units
    layout = book.models.layout
    eligible = (table.state[units] < LIQUIDATION) & ~portfolio
    kernel = band_units if _kernels.ENABLED else band_units_reference
    became, left = kernel(
        units, eligible, table.head, pos.unit_next, pos.instrument, pos.qty, pos.leverage,
        book.mark, layout.contract_size, book.assets.value.take(book.settle_asset),
        layout.n_tiers, layout.floors, layout.mmr, layout.imr, layout.mm_slope,
        layout.im_slope, table.figures, margin_call_ratio, hysteresis, pos.band_low,
        pos.band_high, table.unbanded,
    )  # fmt: skip
    table.unbanded_count += became - left
    if became or left:
        table.unbanded_ids = None  # read again at the next tick that needs them
    holders = pos.holders
    admit = admit_bands if _kernels.ENABLED else admit_bands_reference
    banded = units[~table.unbanded[units]]  # the others' bands are wide open: no summary
    admit(
        banded, table.head, pos.unit_next, pos.instrument, holders.start, pos.holder_slot,
        pos.band_low, pos.band_high, holders.block_low, holders.block_high,
    )  # fmt: skip


def drop(book: Book) -> None:
    """No unit or row has a band (``full_recompute``): every holder is judged at the next
    move of its mark, through its rows."""
    book.positions.drop_bands()
    table = book.units
    table.unbanded[: table.size] = False
    table.unbanded_count = 0
    table.unbanded_ids = None
