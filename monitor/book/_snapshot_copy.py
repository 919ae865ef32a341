"""Copying some accounts out of a book for a snapshot, at once or a bounded step at a time.

:class:`monitor.book.PartitionImage` plans and builds a snapshot's chunks from a
:class:`Copy`; :func:`copy_accounts` takes it with the compiled passes of
``_image_kernels``. A step makes one pass over at most ``step`` accounts, rows or ids (a
quarter of that where each costs more: copying rows, gathering ids) and writes into room
set aside at once but made resident as it is written: on a 2-core virtual machine a fresh
page cost about 4 µs, most of a step, and a third of a million-account book copied at
once took 0.2-0.5 s, in steps 1-3 ms each. Between steps the book's ledger must stand
still (``monitor.snapshots`` holds it back); a step that finds it moved raises
:class:`BookMoved`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from monitor.book._book import Book
from monitor.book._columns import Index
from monitor.book._image_kernels import copy_rows, group, rank_scratch, row_columns

__all__ = ["BLOCK", "STEP_ITEMS", "BookMoved", "Copy", "copy_accounts"]

BLOCK = 2_000  # accounts whose rows and ids are grouped together (a chunk's most)
# Of position rows or ledger ids a step of a copy reads, about: a pass over this many
# takes 2-3 ms (a row copied costs about four times a row read: a step copies a quarter).
STEP_ITEMS = 1 << 17


class BookMoved(RuntimeError):
    """The book's ledger moved while a copy was taken in steps: the copy is void."""


class Copy(NamedTuple):
    """Some accounts' part of a book at one moment, as a snapshot holds it.

    Rows and remembered ledger ids are grouped by block of ``block`` accounts, in book
    order within a block, so that a block's are one slice of their columns; ``*_place``
    is each one's account's place among the copied accounts, ``*_bounds`` where each
    block starts (one more: the end). Columns are keyed by their ``SnapshotChunk`` field.
    """

    block: int
    accounts: dict[str, NDArray[Any]]  # per account: modes, balances
    rows: dict[str, NDArray[Any]]
    row_place: Index
    row_bounds: Index
    seen: dict[str, NDArray[Any]]
    seen_place: Index
    seen_bounds: Index
    clock: int  # the ledger clock
    assets: tuple[str, ...]
    symbols: tuple[str, ...]


def copy_accounts(
    book: Book, accounts: Index, *, partition: int, step: int = STEP_ITEMS
) -> Iterator[Copy | None]:
    """The copy of ``accounts`` (dense ids, ascending; of ledger ``partition``, for the
    message of :class:`BookMoved`): None after each step, the copy last. The first step
    only notes what to copy."""
    pos, seen = book.positions, book.applied_ids
    added, n_rows = seen.added, pos.size  # both move with every ledger event booked

    def paused() -> Iterator[None]:
        yield None
        if seen.added != added or pos.size != n_rows:
            raise BookMoved(
                f"the book's ledger moved while partition {partition}'s snapshot was "
                "copied in steps: hold the ledger until the copy is taken"
            )

    n, quarter, block = int(accounts.shape[0]), max(1, step // 4), BLOCK
    clock, assets, symbols = seen.clock_ms, book.assets.names, book.symbols
    yield from paused()
    size = book.accounts.size
    place = np.empty(size, dtype=np.int32)  # each member's place, -1 for the others
    for first in range(0, size, 4 * step):
        place[first : first + 4 * step] = -1
        yield from paused()
    place[accounts] = np.arange(n, dtype=np.int32)
    balances = book.accounts.balance
    account_columns: dict[str, NDArray[Any]] = {
        "modes": np.empty(n, dtype="<i1"),
        "balances": np.empty((n, *balances.shape[1:]), dtype="<f8"),
    }
    for first in range(0, n, step):
        members = accounts[first : first + step]
        account_columns["modes"][first : first + step] = book.accounts.mode[members]
        account_columns["balances"][first : first + step] = balances[members]
        yield from paused()
    rows, row_place, row_bounds = yield from _group_in_steps(
        pos.account[:n_rows], place, n, step, paused
    )
    columns = row_columns(int(rows.shape[0]))
    scratch = rank_scratch(pos.instrument, book.units.head)
    for part in _cuts(row_bounds, quarter):
        copy_rows(
            rows[part],
            pos.instrument,
            (pos.qty, pos.entry, pos.leverage, pos.isolated_margin),
            pos.unit,
            pos.isolated_unit,
            book.units.head,
            pos.unit_next,
            scratch,
            tuple(column[part] for column in columns),  # type: ignore[arg-type]
        )
        yield from paused()
    del scratch, rows
    symbol, qty, entry, leverage, margin, flags, rank, own = columns
    row_columns_by_field: dict[str, NDArray[Any]] = {
        "row_symbol": symbol.astype("<i4", copy=False),
        "qty": _f8(qty),
        "entry": _f8(entry),
        "leverage": _f8(leverage),
        "isolated_margin": _f8(margin),
        "row_flags": flags.astype("<i1", copy=False),
        "row_rank": rank.astype("<i4", copy=False),
        "row_unit_order": own.astype("<i8", copy=False),
    }
    digests, stamps, owners = seen.log()  # oldest first; views, valid while it stands
    order, seen_place, seen_bounds = yield from _group_in_steps(owners, place, n, step, paused)
    del place
    ids: dict[str, NDArray[Any]] = {
        "seen_digests": np.empty((order.shape[0], *digests.shape[1:]), dtype="<u8"),
        "seen_stamps": np.empty(order.shape[0], dtype="<i8"),
    }
    for first in range(0, max(1, order.shape[0]), quarter):
        taken = order[first : first + quarter]
        end = first + taken.shape[0]
        np.take(digests, taken, axis=0, out=ids["seen_digests"][first:end])
        np.take(stamps, taken, out=ids["seen_stamps"][first:end])
        yield from paused()
    yield Copy(
        block,
        account_columns,
        row_columns_by_field,
        row_place,
        row_bounds,
        ids,
        seen_place,
        seen_bounds,
        clock,
        assets,
        symbols,
    )


def _f8(values: NDArray[Any]) -> NDArray[np.float64]:
    column: NDArray[np.float64] = np.ascontiguousarray(values, dtype="<f8")
    return column


def _group_in_steps(
    owner: NDArray[np.integer[Any]],
    place: NDArray[np.int32],
    n: int,
    step: int,
    paused: Callable[[], Iterator[None]],
) -> Generator[None, None, tuple[Index, Index, Index]]:
    """:func:`group` of ``owner`` into blocks of ``BLOCK`` places, one pass
    over ``step`` items at a time (``paused`` after each): the members' items of each
    part, counted by block, then each part's put in its blocks' places after the earlier
    parts' (so in order within a block)."""
    if owner.shape[0] <= step:
        return group(owner, place, n, BLOCK)
    blocks = -(-n // BLOCK)
    counts = np.zeros(blocks, dtype=np.intp)
    parts: list[tuple[Index, Index]] = []
    for start in range(0, owner.shape[0], step):
        items, at, _ = group(owner[start : start + step], place, n, max(n, 1))
        counts += np.bincount(at // BLOCK, minlength=blocks)
        parts.append((items + start, at))
        yield from paused()
    bounds = np.zeros(blocks + 1, dtype=np.intp)
    np.cumsum(counts, out=bounds[1:])
    fill = bounds[:-1].copy()  # where each block's next item goes
    grouped, places = np.empty(bounds[-1], dtype=np.intp), np.empty(bounds[-1], dtype=np.intp)
    parts.reverse()
    while parts:
        items, at = parts.pop()
        block = at // BLOCK
        order = np.argsort(block, kind="stable")
        block = block[order]
        here = np.bincount(block, minlength=blocks)
        first = np.cumsum(here) - here  # where each block starts among this part's
        to = fill[block] + np.arange(block.shape[0]) - first[block]
        grouped[to], places[to] = items[order], at[order]
        fill += here
        yield from paused()
    return grouped, places, bounds


def _cuts(bounds: Index, most: int) -> Iterator[slice]:
    """Consecutive slices of the grouped items, at block boundaries (``bounds``), of at
    most ``most`` items each unless one block alone is larger."""
    blocks = bounds.shape[0] - 1
    first = 0
    while first < blocks:
        end = int(np.searchsorted(bounds, bounds[first] + most, side="right")) - 1
        end = min(max(end, first + 1), blocks)
        yield slice(int(bounds[first]), int(bounds[end]))
        first = end
    if blocks == 0:
        yield slice(0, 0)
