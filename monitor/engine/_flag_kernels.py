"""Which units a tick must judge: the kernels that read the holder index's band summaries
(``monitor.book._holders``) and keep them conservative, with their numpy references.

A tick flags the unit of every open row whose mark left its band
(``monitor.engine._band_kernels``), and every unit judged without a band that holds an
instrument the tick moved (:func:`flag_unbanded`: such a unit is found by its flag, and
its rows' bands are wide open, so they never make a block worth reading). Rather than
read every holder of every moved instrument (a million rows at a million accounts, most
cycles), :func:`flag_holders` reads each block's summary and only the rows of a block
whose summary the mark is not strictly inside; reading them, it sets the block's summary
back to exact. Whoever writes
bands narrows the summaries to admit them (:func:`admit_bands`, after ``band_units``), so
a summary never hides a row whose band the mark left.

Compiled as ``monitor.engine._kernels.jit`` says; ``tests/unit/test_flag_kernels.py``
checks each kernel against its reference and against a scan of every row.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from monitor.book import HOLDER_BLOCK as BLOCK
from monitor.book import HOLDER_BLOCK_SHIFT as BLOCK_SHIFT
from monitor.book import NO_ROW, Index
from monitor.engine._kernels import jit
from monitor.engine._unit_kernels import unit_rows_of

__all__ = [
    "CHECK",
    "FORCE",
    "SCATTERED",
    "admit_bands",
    "admit_bands_reference",
    "flag_holders",
    "flag_holders_reference",
    "flag_unbanded",
    "flag_unbanded_reference",
]

Array = NDArray[np.float64]
Bands = NDArray[np.float32]
Ints = Index

# What a tick asks of an instrument's holders (``mode``): nothing (0), flag the unit of
# each row whose mark left its band, or flag every holder (its settle asset was
# repriced: every figure of the row moved, whatever the mark did).
CHECK: Final = 1
FORCE: Final = 2

# Reading a holder through its block costs a few times what the pass over every row in
# memory order costs per row (the rows of a block are scattered over the table): when
# the blocks to read hold more than 1/SCATTERED of all rows (a storm, or the first move
# of every instrument after the bands were dropped), that pass is made instead.
SCATTERED: Final = 4


def blocks_to_read_reference(
    mode: NDArray[np.int8],
    start: Ints,
    count: Ints,
    mark: Array,
    block_low: Bands,
    block_high: Bands,
) -> int:
    """How many holders the blocks a tick must read hold."""
    read = 0
    for ix in np.flatnonzero(mode).tolist():
        n = int(count[ix])
        if n == 0:
            continue
        first = int(start[ix])
        blocks = np.arange(first >> BLOCK_SHIFT, ((first + n - 1) >> BLOCK_SHIFT) + 1)
        m = mark[ix]
        outside = ~((block_low[blocks] < m) & (m < block_high[blocks]))
        if mode[ix] == FORCE:
            outside[:] = True
        sizes = np.minimum((blocks + 1) * BLOCK, first + n) - blocks * BLOCK
        read += int(sizes[outside].sum())
    return read


def flag_holders_reference(
    mode: NDArray[np.int8],
    rows: Ints,
    start: Ints,
    count: Ints,
    instrument: Ints,
    slot: Ints,
    unit: Ints,
    low: Bands,
    high: Bands,
    mark: Array,
    block_low: Bands,
    block_high: Bands,
    flagged: NDArray[np.bool_],
    out: Ints,
) -> int:
    """The units of the holders of each instrument whose ``mode`` is FORCE, or CHECK with
    its mark outside the row's ``(low, high)``: each set in ``flagged`` (all False on
    entry) and listed once in ``out``; returns how many.

    Each block of slots read (all of a FORCE instrument's, a CHECK one's whose summary
    does not hold the mark strictly inside) gets its exact summary. When those blocks
    hold more than 1/:data:`SCATTERED` of all rows (``instrument``'s length), reading
    them one by one would cost more than one pass over every row in memory order: that
    pass is made instead, and it sets every block's summary exact."""
    read = blocks_to_read_reference(mode, start, count, mark, block_low, block_high)
    if read * SCATTERED > instrument.shape[0]:
        return _every_row_reference(
            mode, start, instrument, slot, unit, low, high, mark, block_low, block_high,
            flagged, out,
        )  # fmt: skip
    found = []
    for ix in np.flatnonzero(mode).tolist():
        n = int(count[ix])
        if n == 0:
            continue
        first, m = int(start[ix]), mark[ix]
        blocks = np.arange(first >> BLOCK_SHIFT, ((first + n - 1) >> BLOCK_SHIFT) + 1)
        to_read = (
            np.ones(blocks.shape[0], dtype=np.bool_)
            if mode[ix] == FORCE
            else ~((block_low[blocks] < m) & (m < block_high[blocks]))
        )
        for b in blocks[to_read].tolist():
            held_rows = rows[b * BLOCK : min((b + 1) * BLOCK, first + n)]
            lows, highs = low[held_rows], high[held_rows]
            leaving = held_rows if mode[ix] == FORCE else held_rows[~((lows < m) & (m < highs))]
            found.append(unit[leaving])
            block_low[b], block_high[b] = lows.max(), highs.min()
    return _listed(np.concatenate(found) if found else np.empty(0, dtype=np.intp), flagged, out)


def _every_row_reference(
    mode: NDArray[np.int8],
    start: Ints,
    instrument: Ints,
    slot: Ints,
    unit: Ints,
    low: Bands,
    high: Bands,
    mark: Array,
    block_low: Bands,
    block_high: Bands,
    flagged: NDArray[np.bool_],
    out: Ints,
) -> int:
    held = np.flatnonzero(slot[: instrument.shape[0]] != NO_ROW)
    ix = instrument[held]
    m, how = mark[ix], mode[ix]
    lows, highs = low[held], high[held]
    leaving = (how == FORCE) | ((how == CHECK) & ~((lows < m) & (m < highs)))
    block = (start[ix] + slot[held]) >> BLOCK_SHIFT
    block_low.fill(-np.inf)
    block_high.fill(np.inf)
    np.maximum.at(block_low, block, lows)
    np.minimum.at(block_high, block, highs)
    return _listed(unit[held[leaving]], flagged, out)


def _listed(units: Ints, flagged: NDArray[np.bool_], out: Ints) -> int:
    units = np.unique(units[units != NO_ROW])
    flagged[units] = True
    out[: units.shape[0]] = units
    return int(units.shape[0])


def _flag_holders(
    mode: Any,
    rows: Any,
    start: Any,
    count: Any,
    instrument: Any,
    slot: Any,
    unit: Any,
    low: Any,
    high: Any,
    mark: Any,
    block_low: Any,
    block_high: Any,
    flagged: Any,
    out: Any,
) -> int:  # pragma: no cover - compiled by numba; checked against the reference
    read = 0
    for ix in range(mode.shape[0]):
        if mode[ix] == 0:
            continue
        m = mark[ix]
        end = start[ix] + count[ix]
        for first in range(start[ix], end, BLOCK):
            b = first >> BLOCK_SHIFT
            if mode[ix] == FORCE or not (block_low[b] < m and m < block_high[b]):
                read += min(first + BLOCK, end) - first
    found = 0
    if read * SCATTERED > instrument.shape[0]:  # one pass over every row, in memory order
        block_low[:] = -np.inf
        block_high[:] = np.inf
        for r in range(instrument.shape[0]):
            if slot[r] == NO_ROW:
                continue
            ix = instrument[r]
            row_low, row_high = low[r], high[r]
            b = (start[ix] + slot[r]) >> BLOCK_SHIFT
            block_low[b] = max(block_low[b], row_low)
            block_high[b] = min(block_high[b], row_high)
            how, m = mode[ix], mark[ix]
            if how == 0 or (how == CHECK and row_low < m and m < row_high):
                continue
            u = unit[r]
            if u != NO_ROW and not flagged[u]:
                flagged[u] = True
                out[found] = u
                found += 1
        return found
    for ix in range(mode.shape[0]):
        how = mode[ix]
        if how == 0:
            continue
        m = mark[ix]
        end = start[ix] + count[ix]
        for first in range(start[ix], end, BLOCK):  # segments start on a block
            b = first >> BLOCK_SHIFT
            if how == CHECK and block_low[b] < m and m < block_high[b]:
                continue
            lo, hi = -np.inf, np.inf
            for at in range(first, min(first + BLOCK, end)):
                r = rows[at]
                row_low, row_high = low[r], high[r]
                lo = max(lo, row_low)
                hi = min(hi, row_high)
                if how == CHECK and row_low < m and m < row_high:
                    continue
                u = unit[r]
                if u != NO_ROW and not flagged[u]:
                    flagged[u] = True
                    out[found] = u
                    found += 1
            block_low[b] = lo
            block_high[b] = hi
    return found


flag_holders: Any = jit(_flag_holders, flag_holders_reference)
"""``flag_holders(mode, rows, start, count, instrument, slot, unit, low, high, mark,
block_low, block_high, flagged, out) -> count``: ``flag_holders_reference`` (``out`` in
the order found, not sorted)."""


def admit_bands_reference(
    units: Ints,
    head: Ints,
    unit_next: Ints,
    instrument: Ints,
    start: Ints,
    slot: Ints,
    low: Bands,
    high: Bands,
    block_low: Bands,
    block_high: Bands,
) -> None:
    """Narrow the summary of the block of every row listed by ``units`` to admit the
    row's band (just written)."""
    _, listed = unit_rows_of(units, head, unit_next)
    listed = listed[slot[listed] != NO_ROW]
    blocks = (start[instrument[listed]] + slot[listed]) >> BLOCK_SHIFT
    np.maximum.at(block_low, blocks, low[listed])
    np.minimum.at(block_high, blocks, high[listed])


def _admit_bands(
    units: Any,
    head: Any,
    unit_next: Any,
    instrument: Any,
    start: Any,
    slot: Any,
    low: Any,
    high: Any,
    block_low: Any,
    block_high: Any,
) -> None:  # pragma: no cover - compiled by numba; checked against the reference
    for k in range(units.shape[0]):
        r = head[units[k]]
        while r != NO_ROW:
            if slot[r] != NO_ROW:
                b = (start[instrument[r]] + slot[r]) >> BLOCK_SHIFT
                block_low[b] = max(block_low[b], low[r])
                block_high[b] = min(block_high[b], high[r])
            r = unit_next[r]


admit_bands: Any = jit(_admit_bands, admit_bands_reference)
"""``admit_bands(units, head, unit_next, instrument, start, slot, low, high, block_low,
block_high)``: ``admit_bands_reference``, one walk per unit."""


def flag_unbanded_reference(
    mode: NDArray[np.int8],
    candidates: Ints,
    head: Ints,
    unit_next: Ints,
    instrument: Ints,
    flagged: NDArray[np.bool_],
    out: Ints,
    found: int,
) -> int:
    """Of ``candidates`` (the unbanded units), each not yet ``flagged`` with an open row
    of an instrument whose ``mode`` is not 0: set in ``flagged`` and listed in ``out``
    after its first ``found`` entries; returns how many are listed in all."""
    slots, rows = unit_rows_of(candidates, head, unit_next)
    hit = np.unique(slots[mode[instrument[rows]] != 0])
    units = candidates[hit]
    units = units[~flagged[units]]
    flagged[units] = True
    out[found : found + units.shape[0]] = units
    return found + int(units.shape[0])


def _flag_unbanded(
    mode: Any,
    candidates: Any,
    head: Any,
    unit_next: Any,
    instrument: Any,
    flagged: Any,
    out: Any,
    found: Any,
) -> Any:  # pragma: no cover - compiled by numba; checked against the reference
    for k in range(candidates.shape[0]):
        u = candidates[k]
        if flagged[u]:
            continue
        r = head[u]
        while r != NO_ROW:
            if mode[instrument[r]] != 0:
                flagged[u] = True
                out[found] = u
                found += 1
                break
            r = unit_next[r]
    return found


flag_unbanded: Any = jit(_flag_unbanded, flag_unbanded_reference)
"""``flag_unbanded(mode, candidates, head, unit_next, instrument, flagged, out, found)
-> found``: ``flag_unbanded_reference`` (``out`` in the order of ``candidates``)."""
