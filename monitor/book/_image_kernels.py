"""The two passes that copy a partition's accounts out of the book, with their references.

A snapshot's copy (:func:`monitor.book._snapshot_copy.copy_accounts`) runs on the
event loop, a step of a few ms a cycle. In numpy it took about 0.1 s for a third of a
million-account book: nine fancy-index gathers, a mask, a sort and one step per position
of the longest unit list, each a pass over a million rows. These kernels do the same in
two passes each, on parts of the book (a step's):

* :func:`group`: the items (position rows, remembered ledger ids) whose owner account is
  in the partition, grouped by block of ``block`` accounts (stably: book order within a
  block), with each one's place (the owner's index among the partition's accounts) and
  where each block starts. A count per block, then a scatter.
* :func:`copy_rows`: the snapshot's columns of those rows (symbol, the four figures, the
  flags, the place in the unit's row list, the isolated unit), in one pass after one
  walk of the listed units' row lists, written into columns set aside for the whole
  partition.

Compiled on first use, cached on disk, releasing the GIL; ``monitor.engine.warm_up`` compiles them
ahead. ``tests/unit/test_book_image_kernels.py`` checks each against its reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.book._columns import Index
from monitor.book._snapshot import OPEN, OPEN_ISOLATED, WITH_ISOLATED_UNIT
from monitor.compiled import compiled

__all__ = [
    "RowColumns",
    "copy_rows",
    "copy_rows_reference",
    "group",
    "group_reference",
    "rank_scratch",
    "row_columns",
]

Ints = Index
Places = NDArray[np.int32]  # per account: its place in the partition, or -1
Floats = NDArray[np.float64]
RowColumns = tuple[
    NDArray[np.int32],  # symbol
    Floats,  # qty
    Floats,  # entry
    Floats,  # leverage
    Floats,  # isolated margin
    NDArray[np.int8],  # flags
    NDArray[np.int32],  # rank in the unit's row list, -1 for a flat row
    NDArray[np.int64],  # the row's isolated unit (-1: none)
]

_NO_ROW = -1


def group_reference(
    owner: NDArray[np.integer[Any]], place: Places, places: int, block: int
) -> tuple[Ints, Ints, Ints]:
    """Readable version: the indices ``i`` of ``owner`` whose owner has a place
    (``place[owner[i]] >= 0``; owners outside ``place`` have none), grouped by block of
    ``block`` places (0 to ``places``), in index order within a block; their places; and
    where each block starts in them (one more: the end)."""
    owner = owner.astype(np.intp)
    known = (owner >= 0) & (owner < place.shape[0])
    found = np.full(owner.shape[0], -1, dtype=np.intp)
    found[known] = place[owner[known]]  # int32 places: the kernel's table fits the cache
    items = np.flatnonzero(found >= 0)
    at = found[items]
    of_block = at // block
    order = np.argsort(of_block, kind="stable")
    bounds = np.searchsorted(of_block[order], np.arange(-(-places // block) + 1))
    return items[order], at[order], bounds.astype(np.intp)


def _group(
    owner: Any, place: Any, places: int, block: int
) -> Any:  # pragma: no cover - compiled by numba; checked against the reference
    blocks = (places + block - 1) // block
    bounds = np.zeros(blocks + 1, dtype=np.intp)
    size = place.shape[0]
    found = np.empty(owner.shape[0], dtype=np.int32)  # read sequentially by the scatter
    for i in range(owner.shape[0]):
        o = owner[i]
        at = place[o] if o >= 0 and o < size else -1
        found[i] = at
        if at >= 0:
            bounds[at // block + 1] += 1
    for b in range(blocks):
        bounds[b + 1] += bounds[b]
    items = np.empty(bounds[blocks], dtype=np.intp)
    at_of = np.empty(bounds[blocks], dtype=np.intp)
    fill = bounds[:blocks].copy()
    for i in range(owner.shape[0]):
        at = found[i]
        if at >= 0:
            b = at // block
            items[fill[b]] = i
            at_of[fill[b]] = at
            fill[b] += 1
    return items, at_of, bounds


def copy_rows_reference(
    rows: Ints,
    instrument: Ints,
    figures: tuple[Floats, Floats, Floats, Floats],
    unit: Ints,
    isolated_unit: Ints,
    head: Ints,
    unit_next: Ints,
) -> RowColumns:
    """Readable version: the snapshot's columns of position ``rows``. ``figures`` are
    qty, entry, leverage and isolated margin. A row's rank is its place in
    its unit's row list (0 = the head), found by walking every list of the rows' units
    from its head, one vectorised step per position of the longest; -1 for a flat row
    (no unit)."""
    own = isolated_unit[rows]
    listed_unit = unit[rows]
    flags = (
        np.where(listed_unit != _NO_ROW, OPEN, 0)
        | np.where((listed_unit != _NO_ROW) & (listed_unit == own), OPEN_ISOLATED, 0)
        | np.where(own != _NO_ROW, WITH_ISOLATED_UNIT, 0)
    )
    rank = np.empty(instrument.shape[0], dtype=np.int32)
    rank[rows] = -1
    heads = head[np.unique(listed_unit[listed_unit != _NO_ROW])]
    row = heads[heads != _NO_ROW]
    step = 0
    while row.size:
        rank[row] = step
        row = unit_next[row]
        row = row[row != _NO_ROW]
        step += 1
    qty, entry, leverage, isolated_margin = (f[rows] for f in figures)
    return (
        instrument[rows].astype(np.int32),
        qty,
        entry,
        leverage,
        isolated_margin,
        flags.astype(np.int8),
        rank[rows],
        own.astype(np.int64),
    )


def _copy_rows(
    rows: Any,
    instrument: Any,
    qty: Any,
    entry: Any,
    leverage: Any,
    isolated_margin: Any,
    unit: Any,
    isolated_unit: Any,
    head: Any,
    unit_next: Any,
    rank_of: Any,
    walked: Any,
    out_symbol: Any,
    out_qty: Any,
    out_entry: Any,
    out_leverage: Any,
    out_margin: Any,
    out_flags: Any,
    out_rank: Any,
    out_own: Any,
) -> None:  # pragma: no cover - compiled by numba; checked against the reference
    n = rows.shape[0]
    for k in range(n):
        r = rows[k]
        rank_of[r] = -1
    for k in range(n):
        u = unit[rows[k]]
        if u != _NO_ROW and not walked[u]:
            walked[u] = True
            r, step = head[u], 0
            while r != _NO_ROW:
                rank_of[r] = step
                r = unit_next[r]
                step += 1
    for k in range(n):
        r = rows[k]
        u, own = unit[r], isolated_unit[r]
        out_symbol[k] = instrument[r]
        out_qty[k] = qty[r]
        out_entry[k] = entry[r]
        out_leverage[k] = leverage[r]
        out_margin[k] = isolated_margin[r]
        flag = 0
        if u != _NO_ROW:
            flag |= OPEN
            if u == own:
                flag |= OPEN_ISOLATED
        if own != _NO_ROW:
            flag |= WITH_ISOLATED_UNIT
        out_flags[k] = flag
        out_rank[k] = rank_of[r]
        out_own[k] = own


_group_kernel: Any = compiled(_group)
_copy_rows_kernel: Any = compiled(_copy_rows)


def group(
    owner: NDArray[np.integer[Any]], place: Places, places: int, block: int
) -> tuple[Ints, Ints, Ints]:
    """:func:`group_reference`, in two compiled passes (a count per block, then a
    scatter) when numba is installed."""
    if _group_kernel is None:
        return group_reference(owner, place, places, block)
    items, at, bounds = _group_kernel(owner, place, places, block)
    return items, at, bounds


def copy_rows(
    rows: Ints,
    instrument: Ints,
    figures: tuple[Floats, Floats, Floats, Floats],
    unit: Ints,
    isolated_unit: Ints,
    head: Ints,
    unit_next: Ints,
    scratch: tuple[NDArray[np.int32], NDArray[np.bool_]] | None = None,
    out: RowColumns | None = None,
) -> RowColumns:
    """:func:`copy_rows_reference`, in one compiled pass after one walk of the listed
    units' row lists, when numba is installed; written into ``out`` (:func:`row_columns`
    of as many rows) if given. ``scratch`` (:func:`rank_scratch`) may be shared by the
    calls that copy one partition's rows in parts, each part holding whole accounts:
    its pages are then touched once, not once a part."""
    if _copy_rows_kernel is None:
        columns = copy_rows_reference(
            rows, instrument, figures, unit, isolated_unit, head, unit_next
        )
        if out is None:
            return columns
        outs: tuple[NDArray[Any], ...] = out
        for into, column in zip(outs, columns, strict=True):
            into[:] = column
        return out
    rank_of, walked = rank_scratch(instrument, head) if scratch is None else scratch
    out = row_columns(int(rows.shape[0])) if out is None else out
    _copy_rows_kernel(
        rows, instrument, *figures, unit, isolated_unit, head, unit_next, rank_of, walked, *out
    )
    return out


def row_columns(n: int) -> RowColumns:
    """Room for the columns :func:`copy_rows` gives of ``n`` rows (not yet written, so
    not yet resident)."""
    return (
        np.empty(n, dtype=np.int32),
        np.empty(n),
        np.empty(n),
        np.empty(n),
        np.empty(n),
        np.empty(n, dtype=np.int8),
        np.empty(n, dtype=np.int32),
        np.empty(n, dtype=np.int64),
    )


def rank_scratch(instrument: Ints, head: Ints) -> tuple[NDArray[np.int32], NDArray[np.bool_]]:
    """Room for :func:`copy_rows`'s walk: a rank per row and a mark per unit (each unit
    is walked once: by the call whose rows hold its account's)."""
    return np.empty(instrument.shape[0], dtype=np.int32), np.zeros(head.shape[0], dtype=np.bool_)
