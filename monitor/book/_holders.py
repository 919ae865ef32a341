"""The holder index: per instrument, the rows with an open position in it, and per block
of those rows a summary of their price bands, so that a tick skips a block at a glance.

All instruments' holders live in one flat array (``rows``), each instrument in its own
segment (``start``, ``capacity``, ``count``), so that one kernel call can walk every
instrument a tick moved without gathering their rows first. Segments start and end on
multiples of :data:`BLOCK` slots; a segment that fills up moves to the end of the array
with twice the room (when the array is full, every segment is laid out afresh in a
larger one).

The summary of a block of :data:`BLOCK` slots is ``(block_low, block_high)``: no lower
than the highest ``band_low`` and no higher than the lowest ``band_high`` of the rows in
it. A mark strictly inside it is strictly inside every row's band, so the tick flags
none of them (``monitor.engine._bands``). Summaries are *conservative*: whoever writes a
row's band, or puts a row into a slot, narrows its block's summary to admit it
(:meth:`Holders.admit`); rows leaving a block do not widen it. The tick's scan widens a
block back to exact whenever it reads its rows. ``(-inf, +inf)`` is a block no row
constrains; ``(+inf, -inf)`` one that every mark must scan.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

from monitor.book._columns import ID, Ids, Index

__all__ = ["BLOCK", "BLOCK_SHIFT", "Holders"]

BLOCK_SHIFT: Final = 6
BLOCK: Final = 1 << BLOCK_SHIFT  # slots per band summary: 64 rows, 256 bytes of row ids

NO_SLOT: Final = -1

Bands = NDArray[np.float32]
Ints = NDArray[np.intp]


def _room(rows: int) -> int:
    """Slots for a segment of ``rows`` rows: whole blocks, at least one."""
    return max(BLOCK, -(-rows // BLOCK) * BLOCK)


class Holders:
    """Per instrument, the rows holding it (see the module text).

    The row columns it keeps up to date (``slot``: each row's place in its segment,
    ``NO_SLOT`` when it holds nothing) and reads (``low``/``high``: the bands) belong to
    the position table, which passes them in: they are replaced when the table grows.
    """

    def __init__(self, n_instruments: int) -> None:
        self.count: Ints = np.zeros(n_instruments, dtype=np.intp)
        self.capacity: Ints = np.full(n_instruments, BLOCK, dtype=np.intp)
        self.start: Ints = np.arange(n_instruments, dtype=np.intp) * BLOCK
        self.rows: Ids = np.empty(n_instruments * BLOCK, dtype=ID)
        self.block_low: Bands = np.full(n_instruments, -np.inf, dtype=np.float32)
        self.block_high: Bands = np.full(n_instruments, np.inf, dtype=np.float32)
        self._end = n_instruments * BLOCK  # the first slot no segment uses

    def of(self, ix: int) -> Ids:
        """The rows holding instrument ``ix`` (a view: copy it to keep it)."""
        first = int(self.start[ix])
        return self.rows[first : first + int(self.count[ix])]

    def add(self, ix: int, row: int, slot: Ids, low: Bands, high: Bands) -> None:
        count = int(self.count[ix])
        if count == int(self.capacity[ix]):
            self._move(ix, _room(2 * count), low, high)
        at = int(self.start[ix]) + count
        self.rows[at] = row
        slot[row] = count
        self.count[ix] = count + 1
        self.admit(at, low[row], high[row])

    def remove(self, ix: int, row: int, slot: Ids, low: Bands, high: Bands) -> None:
        """Take ``row`` out; the last holder moves into its slot."""
        last = int(self.count[ix]) - 1
        first = int(self.start[ix])
        at = first + int(slot[row])
        moved = int(self.rows[first + last])
        self.rows[at] = moved
        slot[moved] = at - first
        slot[row] = NO_SLOT
        self.count[ix] = last
        if moved != row:
            self.admit(at, low[moved], high[moved])

    def replace(self, ix: int, rows: Index, slot: Ids, low: Bands, high: Bands) -> None:
        """Make ``rows`` the holders of ``ix``, in that order (bulk loading)."""
        n = int(rows.shape[0])
        if int(self.capacity[ix]) < n:
            self._move(ix, _room(2 * n), low, high)
        first = int(self.start[ix])
        self.rows[first : first + n] = rows
        self.count[ix] = n
        slot[rows] = np.arange(n)
        blocks = slice(first // BLOCK, (first + int(self.capacity[ix])) // BLOCK)
        self.block_low[blocks], self.block_high[blocks] = self._exact(
            first, int(self.capacity[ix]), n, low, high
        )

    def admit(self, at: int, low: float, high: float) -> None:
        """Narrow the summary of the block of slot ``at`` to admit a band."""
        block = at >> BLOCK_SHIFT
        if low > self.block_low[block]:
            self.block_low[block] = low
        if high < self.block_high[block]:
            self.block_high[block] = high

    def scan_everything(self) -> None:
        """Every block scanned at the next move of its instrument (bands dropped)."""
        self.block_low.fill(np.inf)
        self.block_high.fill(-np.inf)

    def exact_summaries(self, low: Bands, high: Bands) -> tuple[Bands, Bands]:
        """Every block's exact summary from the rows' bands now (for checks)."""
        lows = np.full(self.rows.shape[0], -np.inf, dtype=np.float32)
        highs = np.full(self.rows.shape[0], np.inf, dtype=np.float32)
        live = self._live_slots()
        held = self.rows[live]
        lows[live], highs[live] = low[held], high[held]
        return lows.reshape(-1, BLOCK).max(axis=1), highs.reshape(-1, BLOCK).min(axis=1)

    # ------------------------------------------------------------------ layout

    def _live_slots(self) -> Ints:
        """Every slot holding a row, segment by segment."""
        count = self.count
        total = int(count.sum())
        offsets = np.repeat(self.start - (np.cumsum(count) - count), count)
        live: Ints = np.arange(total, dtype=np.intp) + offsets
        return live

    def _exact(
        self, first: int, capacity: int, n: int, low: Bands, high: Bands
    ) -> tuple[Bands, Bands]:
        lows = np.full(capacity, -np.inf, dtype=np.float32)
        highs = np.full(capacity, np.inf, dtype=np.float32)
        held = self.rows[first : first + n]
        lows[:n], highs[:n] = low[held], high[held]
        return lows.reshape(-1, BLOCK).max(axis=1), highs.reshape(-1, BLOCK).min(axis=1)

    def _move(self, ix: int, capacity: int, low: Bands, high: Bands) -> None:
        """Give ``ix`` a segment of ``capacity`` slots at the end (all segments laid out
        afresh in a larger array when there is no room)."""
        if self._end + capacity > self.rows.shape[0]:
            self._lay_out(ix, capacity, low, high)
            return
        first, count = int(self.start[ix]), int(self.count[ix])
        at = self._end
        self.rows[at : at + count] = self.rows[first : first + count]
        old, new = first // BLOCK, at // BLOCK
        used = -(-count // BLOCK)
        self.block_low[new : new + used] = self.block_low[old : old + used]
        self.block_high[new : new + used] = self.block_high[old : old + used]
        self.block_low[new + used : new + capacity // BLOCK] = -np.inf
        self.block_high[new + used : new + capacity // BLOCK] = np.inf
        self.start[ix], self.capacity[ix] = at, capacity
        self._end = at + capacity

    def _lay_out(self, ix: int, capacity: int, low: Bands, high: Bands) -> None:
        capacities = self.capacity.copy()
        capacities[ix] = capacity
        starts = np.cumsum(capacities) - capacities
        end = int(capacities.sum())
        rows = np.empty(2 * end, dtype=ID)  # room for the segments to grow in place
        for k in np.flatnonzero(self.count).tolist():
            first, n = int(self.start[k]), int(self.count[k])
            rows[starts[k] : starts[k] + n] = self.rows[first : first + n]
        self.rows, self.start, self.capacity, self._end = rows, starts, capacities, end
        self.block_low, self.block_high = self.exact_summaries(low, high)
