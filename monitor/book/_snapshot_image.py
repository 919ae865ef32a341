"""Taking snapshots of some accounts of a book: a copy at one moment, chunks from it later.

What a snapshot holds, and how it loads, is in ``_snapshot``. Taking one at a million
accounts used to stall a cycle for over half a second; now :class:`PartitionImage`
copies the accounts out of the book (``_snapshot_copy``), a bounded step at a time if
the caller likes
(:meth:`PartitionImage.in_steps`: the book's ledger must stand still meanwhile), and the
chunks are planned, built and encoded from the copy whenever the caller likes
(``monitor.snapshots`` spreads both over cycles).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from monitor.book._book import Book
from monitor.book._columns import Index
from monitor.book._snapshot_copy import STEP_ITEMS, Copy, copy_accounts
from monitor.errors import InputError
from monitor.schema import SnapshotChunk

__all__ = ["PartitionImage", "Piece", "export_accounts", "export_partition"]

_MAX_NUMBER = 999_999_999  # more chunks than any snapshot has: sizes the chunk numbers


def _i32(values: NDArray[Any]) -> bytes:
    return np.ascontiguousarray(values, dtype="<i4").tobytes()


def export_accounts(
    book: Book,
    accounts: Index,
    *,
    topic: str,
    partition: int,
    next_offset: int,
    ts: int,
) -> SnapshotChunk:
    """One chunk (``chunk`` 0 of 1) holding ``accounts`` (dense ids, ascending)."""
    image = PartitionImage(
        book, accounts, topic=topic, partition=partition, next_offset=next_offset, ts=ts
    )
    return image.chunk(image.piece(0, image.size), 0, 1)


def export_partition(
    book: Book,
    accounts: Index,
    *,
    topic: str,
    partition: int,
    next_offset: int,
    ts: int,
    max_bytes: int,
    encode: Callable[[Any], bytes],
) -> list[SnapshotChunk]:
    """The snapshot of ``accounts`` as chunks that each encode to at most ``max_bytes``
    (an account too large for one spans several), all at once."""
    image = PartitionImage(
        book, np.sort(accounts), topic=topic, partition=partition, next_offset=next_offset, ts=ts
    )
    pieces = list(image.plan(max_bytes, encode))
    return [image.chunk(piece, n, len(pieces)) for n, piece in enumerate(pieces)]


class Piece(NamedTuple):
    """Some accounts of a :class:`PartitionImage` (places ``first`` to ``end``), the
    image's indices of their rows and remembered ids, and their names. A part of one
    account too large for a chunk holds some of its rows and ids; ``continues`` when an
    earlier part holds the ones before."""

    first: int
    end: int
    rows: slice | Index
    seen: slice | Index
    names: list[str]
    continues: bool = False


class PartitionImage:
    """What a snapshot of some accounts holds, copied out of the book at one moment, so
    that its chunks can be planned, built and encoded over later cycles while the book
    moves on.

    Taking it (:func:`monitor.book._snapshot_copy.copy_accounts`, at once or a step at a
    time with :meth:`in_steps`) is a few compiled passes over the book: for a third of a
    book of a million accounts, 1.7 million positions and 2 million ledger ids, 0.2-0.5 s
    at once on a 2-core virtual machine or about a hundred steps of 1-3 ms. Building and
    encoding the chunks is done from the copy, a block of accounts (the copy's grouping)
    at most per chunk. Names are read from the book's name index (which only grows) when
    a chunk is planned.
    """

    def __init__(
        self,
        book: Book,
        accounts: Index,
        *,
        topic: str,
        partition: int,
        next_offset: int,
        ts: int,
    ) -> None:
        """The image of ``accounts`` (dense ids, ascending) as ``book`` holds them now,
        after every record of ``topic[partition]`` before ``next_offset``: taken at once."""
        for _ in self._take(book, accounts, (topic, partition, next_offset, ts), STEP_ITEMS):
            pass

    @classmethod
    def in_steps(
        cls,
        book: Book,
        accounts: Index,
        *,
        topic: str,
        partition: int,
        next_offset: int,
        ts: int,
        step_items: int = STEP_ITEMS,
    ) -> Iterator[PartitionImage | None]:
        """The same image taken a step at a time: None after each step (each reads about
        ``step_items`` position rows or ledger ids, or copies a quarter of that), the
        image last. The first step only notes what to copy. The book's ledger must not
        move until the last: if it does, the next step raises :class:`BookMoved`."""
        image = cls.__new__(cls)
        for _ in image._take(book, accounts, (topic, partition, next_offset, ts), step_items):
            yield None
        yield image

    def _take(
        self, book: Book, accounts: Index, at: tuple[str, int, int, int], step: int
    ) -> Iterator[None]:
        """Copy ``accounts`` out of ``book`` (``at``: topic, partition, next offset and
        time), pausing after each step (:func:`copy_accounts`)."""
        self.topic, self.partition, self.next_offset, self.ts = at
        self._accounts = accounts
        self._names = book.account_index
        for copied in copy_accounts(book, accounts, partition=self.partition, step=step):
            if copied is None:
                yield None
            else:
                self._copy: Copy = copied

    @property
    def size(self) -> int:
        """How many accounts it holds."""
        return int(self._accounts.shape[0])

    def plan(self, max_bytes: int, encode: Callable[[Any], bytes]) -> Iterator[Piece]:
        """The pieces whose chunks each encode to at most ``max_bytes``, a block of
        accounts at a time, halved until it fits; an account too large alone is cut into
        parts (:meth:`_parts`). A chunk's size is worked out, not encoded: a chunk with no
        accounts numbered with more digits than any has, plus the base64 of each column,
        plus the names' JSON: an upper bound by a few bytes at most."""
        empty = self.piece(0, 0)
        fixed = max(
            len(encode(self.chunk(empty._replace(continues=continues), _MAX_NUMBER, _MAX_NUMBER)))
            for continues in (False, True)
        )
        blocks = self._copy.block
        for block in range(0, max(1, self.size), blocks):
            pending = [(block, min(block + blocks, self.size))]
            while pending:
                first, end = pending.pop(0)
                piece = self.piece(first, end)
                if fixed + self._added_bytes(piece, encode) <= max_bytes:
                    yield piece
                elif end - first > 1:
                    half = first + (end - first) // 2
                    pending[:0] = [(first, half), (half, end)]
                else:
                    yield from self._parts(piece, max_bytes - fixed, encode)

    def _parts(self, piece: Piece, room: int, encode: Callable[[Any], bytes]) -> Iterator[Piece]:
        """One account's ``piece`` cut into parts that each add at most ``room`` bytes to
        a chunk: its position rows in order, then its remembered ids in order, as many as
        fit, the ids starting in the part with the last rows. Raises ``InputError`` when
        not even one row or id fits (a name or a symbol table near the chunk limit)."""
        rows, seen = _indices(piece.rows), _indices(piece.seen)
        name = len(encode(piece.names)) - 2
        row_at = seen_at = 0
        while True:
            taken_rows = self._most(room, name, rows.shape[0] - row_at)
            taken_seen = 0
            if row_at + taken_rows == rows.shape[0]:
                taken_seen = self._most(room, name, seen.shape[0] - seen_at, rows=taken_rows)
            if taken_rows + taken_seen == 0:
                raise InputError(
                    f"account {piece.names[0]!r}: not even one of its position rows or "
                    "ledger ids fits a snapshot chunk"
                )
            yield piece._replace(
                rows=rows[row_at : row_at + taken_rows],
                seen=seen[seen_at : seen_at + taken_seen],
                continues=(row_at, seen_at) != (0, 0),
            )
            row_at, seen_at = row_at + taken_rows, seen_at + taken_seen
            if row_at == rows.shape[0] and seen_at == seen.shape[0]:
                return

    def _most(self, room: int, name: int, limit: int, *, rows: int | None = None) -> int:
        """The most items, up to ``limit``, that fit ``room`` in a part of one account
        (``name`` bytes of name): position rows, or with ``rows`` remembered ids beside
        that many rows. By bisection: the size grows with the count."""
        low, high = 0, limit
        while low < high:
            mid = (low + high + 1) // 2
            size = self._bytes(name, 1, mid, 0) if rows is None else self._bytes(name, 1, rows, mid)
            if size <= room:
                low = mid
            else:
                high = mid - 1
        return low

    def _added_bytes(self, piece: Piece, encode: Callable[[Any], bytes]) -> int:
        """How much ``piece`` adds to the encoding of a chunk with no accounts."""
        names = len(encode(piece.names)) - 2
        return self._bytes(names, piece.end - piece.first, _count(piece.rows), _count(piece.seen))

    def _bytes(self, names: int, accounts: int, rows: int, seen: int) -> int:
        """How much ``accounts`` accounts (``names`` bytes of names' JSON), ``rows`` rows and
        ``seen`` remembered ids add to a chunk with no accounts: the names and the base64 of
        the columns (row and owner places are int32)."""
        copied = self._copy
        added = names
        added += sum(_base64(accounts * _item_bytes(c)) for c in copied.accounts.values())
        added += sum(_base64(rows * _item_bytes(c)) for c in copied.rows.values())
        added += sum(_base64(seen * _item_bytes(c)) for c in copied.seen.values())
        return added + _base64(4 * rows) + _base64(4 * seen)

    def piece(self, first: int, end: int) -> Piece:
        """The accounts at places ``first`` to ``end``."""
        copied = self._copy
        return Piece(
            first,
            end,
            _within(copied.row_place, copied.row_bounds, copied.block, first, end, self.size),
            _within(copied.seen_place, copied.seen_bounds, copied.block, first, end, self.size),
            self._names.names_of(self._accounts[first:end]),
        )

    def chunk(self, piece: Piece, number: int, total: int) -> SnapshotChunk:
        """The chunk of ``piece``, number ``number`` of ``total``."""
        first, end, rows, seen = piece.first, piece.end, piece.rows, piece.seen
        copied = self._copy
        accounts, row, ids = copied.accounts, copied.rows, copied.seen
        return SnapshotChunk(
            topic=self.topic,
            partition=self.partition,
            next_offset=self.next_offset,
            chunk=number,
            chunks=total,
            continues=piece.continues,
            ts=self.ts,
            ledger_clock=copied.clock,
            assets=copied.assets,
            symbols=copied.symbols,
            accounts=piece.names,
            modes=accounts["modes"][first:end].tobytes(),
            balances=accounts["balances"][first:end].tobytes(),
            row_account=_i32(copied.row_place[rows] - first),
            row_symbol=row["row_symbol"][rows].tobytes(),
            qty=row["qty"][rows].tobytes(),
            entry=row["entry"][rows].tobytes(),
            leverage=row["leverage"][rows].tobytes(),
            isolated_margin=row["isolated_margin"][rows].tobytes(),
            row_flags=row["row_flags"][rows].tobytes(),
            row_rank=row["row_rank"][rows].tobytes(),
            row_unit_order=row["row_unit_order"][rows].tobytes(),
            seen_digests=ids["seen_digests"][seen].tobytes(),
            seen_stamps=ids["seen_stamps"][seen].tobytes(),
            seen_owners=_i32(copied.seen_place[seen] - first),
        )


def _within(place: Index, bounds: Index, block: int, first: int, end: int, n: int) -> slice | Index:
    """The indices of the items with a place from ``first`` to ``end`` (of ``n``; grouped
    by blocks of ``block`` places): a slice when these are whole blocks, else the indices
    (ascending) in their blocks."""
    if end <= first:
        return slice(0, 0)
    lo, hi = first // block, -(-end // block)
    span = slice(int(bounds[lo]), int(bounds[hi]))
    if first % block == 0 and (end % block == 0 or end == n):
        return span
    inside = (place[span] >= first) & (place[span] < end)
    found: Index = span.start + np.flatnonzero(inside)
    return found


def _indices(taken: slice | Index) -> Index:
    if isinstance(taken, slice):
        return np.arange(taken.start, taken.stop, dtype=np.intp)
    return taken


def _count(taken: slice | Index) -> int:
    return taken.stop - taken.start if isinstance(taken, slice) else int(taken.shape[0])


def _item_bytes(column: NDArray[Any]) -> int:
    """Bytes per item (per account, row or id) of a column."""
    return int(column.itemsize * np.prod(column.shape[1:], dtype=np.int64))


def _base64(size: int) -> int:
    """Characters of ``size`` bytes in padded base64."""
    return 4 * (-(-size // 3))
