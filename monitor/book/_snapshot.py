"""Snapshots of some accounts of a book, and loading many of them into an empty book.

A snapshot holds what the ledger built for the accounts of one ``fills`` partition:
wallets, margin modes, every position row (flat rows too: they keep the chosen
leverage, realised PnL and the isolated unit that a later open reuses) and the ledger
ids applied within the idempotency window. Margin states are not in it: recovery
restores them from the changelog, which is never older than a snapshot.

Loading is vectorised (the shape of ``load_cross_accounts``): a million accounts with
three million positions load in seconds, where replaying their ledger took minutes.
Figures are not computed here: follow with ``Engine.full_recompute()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from monitor.book._book import Book
from monitor.book._positions import NO_ROW
from monitor.book._seen import digests_of
from monitor.book._tables import PORTFOLIO
from monitor.errors import InputError
from monitor.schema import SnapshotChunk

__all__ = [
    "OPEN",
    "OPEN_ISOLATED",
    "WITH_ISOLATED_UNIT",
    "PartitionImage",
    "Piece",
    "export_accounts",
    "export_partition",
    "load_snapshots",
]

_ACCOUNTS_PER_CHUNK = 2_000
_MAX_NUMBER = 999_999_999  # more chunks than any snapshot has: sizes the chunk numbers

OPEN = 1
OPEN_ISOLATED = 2
WITH_ISOLATED_UNIT = 4


def _f8(values: NDArray[Any]) -> NDArray[np.float64]:
    column: NDArray[np.float64] = np.ascontiguousarray(values, dtype="<f8")
    return column


def _i32(values: NDArray[Any]) -> bytes:
    return np.ascontiguousarray(values, dtype="<i4").tobytes()


def _i8(values: NDArray[Any]) -> bytes:
    return np.ascontiguousarray(values, dtype="<i1").tobytes()


def export_accounts(
    book: Book,
    accounts: NDArray[np.intp],
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
    accounts: NDArray[np.intp],
    *,
    topic: str,
    partition: int,
    next_offset: int,
    ts: int,
    max_bytes: int,
    encode: Callable[[Any], bytes],
) -> list[SnapshotChunk]:
    """The snapshot of ``accounts`` as chunks that each encode to at most ``max_bytes``
    (an account too large for a chunk alone raises ``InputError``), all at once."""
    image = PartitionImage(
        book, np.sort(accounts), topic=topic, partition=partition, next_offset=next_offset, ts=ts
    )
    pieces = list(image.plan(max_bytes, encode))
    return [image.chunk(piece, n, len(pieces)) for n, piece in enumerate(pieces)]


class Piece(NamedTuple):
    """Some accounts of a :class:`PartitionImage` (places ``first`` to ``end``), the
    image's indices of their rows and remembered ids, and their names."""

    first: int
    end: int
    rows: slice | NDArray[np.intp]
    seen: slice | NDArray[np.intp]
    names: list[str]


class PartitionImage:
    """What a snapshot of some accounts holds, copied out of the book at one moment, so
    that its chunks can be planned, built and encoded over later cycles while the book
    moves on.

    Taking it is a few vectorised gathers over the book (about 0.1 s for a third of a
    book of a million accounts); building and encoding the chunks, most of the work, is
    done from the copy. Rows and remembered ledger ids are grouped by block of
    ``_ACCOUNTS_PER_CHUNK`` accounts, in book order within a block, so that a block's
    are one slice. Names are read from the book's list of names (which only grows) when
    a chunk is planned.
    """

    def __init__(
        self,
        book: Book,
        accounts: NDArray[np.intp],
        *,
        topic: str,
        partition: int,
        next_offset: int,
        ts: int,
    ) -> None:
        """The image of ``accounts`` (dense ids, ascending) as ``book`` holds them now,
        after every record of ``topic[partition]`` before ``next_offset``."""
        self.topic, self.partition, self.next_offset, self.ts = topic, partition, next_offset, ts
        pos = book.positions
        n = int(accounts.shape[0])
        member = np.zeros(book.accounts.size, dtype=np.bool_)
        member[accounts] = True
        place_of = np.cumsum(member, dtype=np.intp) - 1  # each member's place in accounts
        rows = np.flatnonzero(member[pos.account[: pos.size]])
        rows, self._row_place, self._row_bounds = _by_block(rows, place_of[pos.account[rows]], n)
        unit, own = pos.unit[rows], pos.isolated_unit[rows]
        flags = (
            np.where(unit != NO_ROW, OPEN, 0)
            | np.where((unit != NO_ROW) & (unit == own), OPEN_ISOLATED, 0)
            | np.where(own != NO_ROW, WITH_ISOLATED_UNIT, 0)
        )
        self._rows: dict[str, NDArray[Any]] = {  # SnapshotChunk field -> column
            "row_symbol": pos.instrument[rows].astype("<i4"),
            "qty": _f8(pos.qty[rows]),
            "entry": _f8(pos.entry[rows]),
            "realised": _f8(pos.realised[rows]),
            "leverage": _f8(pos.leverage[rows]),
            "isolated_margin": _f8(pos.isolated_margin[rows]),
            "row_flags": flags.astype("<i1"),
            "row_rank": _list_ranks(book, rows).astype("<i4"),
            "row_unit_order": own.astype("<i8"),
        }
        digests, stamps, owners = book.applied_ids.owned_by(member)  # oldest first
        order, self._seen_place, self._seen_bounds = _by_block(
            np.arange(owners.shape[0]), place_of[owners], n
        )
        self._seen: dict[str, NDArray[Any]] = {
            "seen_digests": np.ascontiguousarray(digests[order], dtype="<u8"),
            "seen_stamps": stamps[order].astype("<i8"),
        }
        self._accounts = accounts
        self._names = book.account_names
        self._accounts_cols: dict[str, NDArray[Any]] = {
            "modes": book.accounts.mode[accounts].astype("<i1"),
            "balances": _f8(book.accounts.balance[accounts]),
        }
        self._clock = book.applied_ids.clock_ms
        self._assets = book.assets.names
        self._symbols = book.symbols

    @property
    def size(self) -> int:
        """How many accounts it holds."""
        return int(self._accounts.shape[0])

    def plan(self, max_bytes: int, encode: Callable[[Any], bytes]) -> Iterator[Piece]:
        """The pieces whose chunks each encode to at most ``max_bytes``, a block of
        accounts at a time (halved until it fits: an account too large alone raises
        ``InputError``). A chunk's size is worked out, not encoded: a chunk with no
        accounts numbered with more digits than any has, plus the base64 of each
        column, plus the names' JSON: an upper bound by a few bytes at most."""
        empty = self.chunk(self.piece(0, 0), _MAX_NUMBER, _MAX_NUMBER)
        fixed = len(encode(empty))
        for block in range(0, max(1, self.size), _ACCOUNTS_PER_CHUNK):
            pending = [(block, min(block + _ACCOUNTS_PER_CHUNK, self.size))]
            while pending:
                first, end = pending.pop(0)
                piece = self.piece(first, end)
                if fixed + self._added_bytes(piece, encode) <= max_bytes:
                    yield piece
                elif end - first > 1:
                    half = first + (end - first) // 2
                    pending[:0] = [(first, half), (half, end)]
                else:
                    raise InputError(
                        f"account {piece.names[0]!r} alone does not fit a snapshot chunk"
                    )

    def _added_bytes(self, piece: Piece, encode: Callable[[Any], bytes]) -> int:
        """How much ``piece`` adds to the encoding of a chunk with no accounts: its names' JSON and
        the base64 of its columns (row and owner places are int32)."""
        accounts, rows, seen = piece.end - piece.first, _count(piece.rows), _count(piece.seen)
        added = len(encode(piece.names)) - 2
        added += sum(_base64(accounts * _item_bytes(c)) for c in self._accounts_cols.values())
        added += sum(_base64(rows * _item_bytes(c)) for c in self._rows.values())
        added += sum(_base64(seen * _item_bytes(c)) for c in self._seen.values())
        return added + _base64(4 * rows) + _base64(4 * seen)

    def piece(self, first: int, end: int) -> Piece:
        """The accounts at places ``first`` to ``end``."""
        return Piece(
            first,
            end,
            _within(self._row_place, self._row_bounds, first, end, self.size),
            _within(self._seen_place, self._seen_bounds, first, end, self.size),
            [self._names[ix] for ix in self._accounts[first:end].tolist()],
        )

    def chunk(self, piece: Piece, number: int, total: int) -> SnapshotChunk:
        """The chunk of ``piece``, number ``number`` of ``total``."""
        first, end, rows, seen = piece.first, piece.end, piece.rows, piece.seen
        accounts, row, ids = self._accounts_cols, self._rows, self._seen
        return SnapshotChunk(
            topic=self.topic,
            partition=self.partition,
            next_offset=self.next_offset,
            chunk=number,
            chunks=total,
            ts=self.ts,
            ledger_clock=self._clock,
            assets=self._assets,
            symbols=self._symbols,
            accounts=piece.names,
            modes=accounts["modes"][first:end].tobytes(),
            balances=accounts["balances"][first:end].tobytes(),
            row_account=_i32(self._row_place[rows] - first),
            row_symbol=row["row_symbol"][rows].tobytes(),
            qty=row["qty"][rows].tobytes(),
            entry=row["entry"][rows].tobytes(),
            realised=row["realised"][rows].tobytes(),
            leverage=row["leverage"][rows].tobytes(),
            isolated_margin=row["isolated_margin"][rows].tobytes(),
            row_flags=row["row_flags"][rows].tobytes(),
            row_rank=row["row_rank"][rows].tobytes(),
            row_unit_order=row["row_unit_order"][rows].tobytes(),
            seen_digests=ids["seen_digests"][seen].tobytes(),
            seen_stamps=ids["seen_stamps"][seen].tobytes(),
            seen_owners=_i32(self._seen_place[seen] - first),
        )


def _by_block(
    items: NDArray[np.intp], place: NDArray[np.intp], n: int
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp]]:
    """``items`` and their ``place`` (0 to ``n``) grouped by block of places (stably),
    and where each block starts in them (one more: the end)."""
    blocks = -(-n // _ACCOUNTS_PER_CHUNK)
    block = place // _ACCOUNTS_PER_CHUNK
    # 16-bit keys sort by radix: 4 ms for a million, against 60 for timsort on intp.
    key = block.astype(np.uint16) if blocks <= 1 << 16 else block
    order = np.argsort(key, kind="stable")
    block = block[order]
    bounds = np.searchsorted(block, np.arange(blocks + 1))
    return items[order], place[order], bounds


def _within(
    place: NDArray[np.intp], bounds: NDArray[np.intp], first: int, end: int, n: int
) -> slice | NDArray[np.intp]:
    """The indices of the items with a place from ``first`` to ``end`` (of ``n``): a
    slice when these are whole blocks, else the indices (ascending) in their blocks."""
    if end <= first:
        return slice(0, 0)
    lo, hi = first // _ACCOUNTS_PER_CHUNK, -(-end // _ACCOUNTS_PER_CHUNK)
    span = slice(int(bounds[lo]), int(bounds[hi]))
    if first % _ACCOUNTS_PER_CHUNK == 0 and (end % _ACCOUNTS_PER_CHUNK == 0 or end == n):
        return span
    inside = (place[span] >= first) & (place[span] < end)
    found: NDArray[np.intp] = span.start + np.flatnonzero(inside)
    return found


def _list_ranks(book: Book, rows: NDArray[np.intp]) -> NDArray[np.int32]:
    """Each row's place in its unit's position list (0 = head), -1 for flat rows; one
    vectorised step per position of the longest list."""
    pos, units = book.positions, book.units
    rank = np.empty(pos.size, dtype=np.int32)  # written at ``rows`` only: no pass over all
    rank[rows] = -1
    unit = pos.unit[rows]
    listed = np.zeros(units.size, dtype=np.bool_)  # the units, by a mask: cheaper than unique
    listed[unit[unit != NO_ROW]] = True
    heads = units.head[np.flatnonzero(listed)]
    row = heads[heads != NO_ROW]
    step = 0
    while row.size:
        rank[row] = step
        row = pos.unit_next[row]
        row = row[row != NO_ROW]
        step += 1
    result: NDArray[np.int32] = rank[rows]
    return result


def _count(taken: slice | NDArray[np.intp]) -> int:
    return taken.stop - taken.start if isinstance(taken, slice) else int(taken.shape[0])


def _item_bytes(column: NDArray[Any]) -> int:
    """Bytes per item (per account, row or id) of a column."""
    return int(column.itemsize * np.prod(column.shape[1:], dtype=np.int64))


def _base64(size: int) -> int:
    """Characters of ``size`` bytes in padded base64."""
    return 4 * (-(-size // 3))


# Position columns of a chunk: name in ``_load`` -> (SnapshotChunk field, dtype).
_COLUMNS: dict[str, tuple[str, str]] = {
    "account": ("row_account", "<i4"),
    "instrument": ("row_symbol", "<i4"),
    "qty": ("qty", "<f8"),
    "entry": ("entry", "<f8"),
    "realised": ("realised", "<f8"),
    "lev": ("leverage", "<f8"),
    "iso": ("isolated_margin", "<f8"),
    "flags": ("row_flags", "<i1"),
    "rank": ("row_rank", "<i4"),
    "order": ("row_unit_order", "<i8"),
}


def load_snapshots(book: Book, chunks: Sequence[SnapshotChunk]) -> list[str]:
    """Load every account of ``chunks`` into an empty ``book``; return the symbols of
    position rows that were skipped because the instrument is no longer configured."""
    if book.accounts.size or book.positions.size:
        raise ValueError("load_snapshots needs an empty book")
    skipped: set[str] = set()
    names: list[str] = []
    modes: list[NDArray[Any]] = []
    balances: list[NDArray[np.float64]] = []
    # Views of the chunks' columns, concatenated once: per-chunk copies (a few tens of
    # kilobytes each, hundreds of them) would be freed in the middle of the heap and stay
    # resident (monitor.allocator).
    parts: dict[str, list[NDArray[Any]]] = {k: [] for k in _COLUMNS}
    symbol_maps: list[NDArray[np.intp]] = []  # per chunk, its symbol table onto the book
    seen: list[tuple[NDArray[np.uint64], NDArray[np.int64], NDArray[np.int64]]] = []
    clock = 0
    index = book.instrument_index
    for chunk in chunks:
        base = len(names)
        names.extend(chunk.accounts)
        modes.append(np.frombuffer(chunk.modes, dtype="<i1"))
        balances.append(_balances(book, chunk))
        symbol_maps.append(np.array([index.get(s, -1) for s in chunk.symbols], dtype=np.intp))
        for key, (field, dtype) in _COLUMNS.items():
            parts[key].append(np.frombuffer(getattr(chunk, field), dtype=dtype))
        seen.append(_seen_of(chunk, base))
        clock = max(clock, chunk.ledger_clock)
    if len(set(names)) != len(names):
        raise InputError("an account appears in two snapshots; each account has one partition")
    cols = {k: np.concatenate(v) if v else np.empty(0) for k, v in parts.items()}
    rows_per_chunk = np.array([p.shape[0] for p in parts["account"]], dtype=np.intp)
    accounts_per_chunk = np.array([len(c.accounts) for c in chunks], dtype=np.intp)
    first_account = np.cumsum(accounts_per_chunk) - accounts_per_chunk
    account = cols["account"].astype(np.intp)
    account += np.repeat(first_account, rows_per_chunk)
    cols["account"] = account
    # Each chunk's symbol indexes onto the book's instruments (-1: no longer configured).
    sizes = np.array([m.shape[0] for m in symbol_maps], dtype=np.intp)
    offsets = np.cumsum(sizes) - sizes
    symbol = cols["instrument"].astype(np.intp)
    symbol += np.repeat(offsets, rows_per_chunk)
    all_maps = np.concatenate(symbol_maps) if symbol_maps else np.empty(0, dtype=np.intp)
    instrument = all_maps[symbol]
    cols["instrument"] = instrument
    keep = instrument >= 0
    if not keep.all():
        names_of = [s for c in chunks for s in c.symbols]
        skipped.update(names_of[k] for k in np.unique(symbol[~keep]).tolist())
        cols = {k: v[keep] for k, v in cols.items()}
    all_modes = np.concatenate(modes) if modes else np.empty(0, dtype=np.int8)
    _load(book, names, all_modes, np.concatenate(balances) if balances else None, cols)
    book.applied_ids.restore(
        np.concatenate([d for d, _, _ in seen]) if seen else np.empty((0, 2), dtype=np.uint64),
        np.concatenate([s for _, s, _ in seen]) if seen else np.empty(0, dtype=np.int64),
        np.concatenate([o for _, _, o in seen]) if seen else np.empty(0, dtype=np.int64),
        clock,
    )
    return sorted(skipped)


def _seen_of(
    chunk: SnapshotChunk, base: int
) -> tuple[NDArray[np.uint64], NDArray[np.int64], NDArray[np.int64]]:
    """The chunk's remembered ledger ids: digests (n, 2), stamps, owners (book-wide);
    from the digest columns, or from ``seen`` in a snapshot written before them."""
    if chunk.seen:
        digests = digests_of([(kind, item_id) for kind, item_id, _, _ in chunk.seen])
        stamps = np.array([entry[2] for entry in chunk.seen], dtype=np.int64)
        owners = np.array([entry[3] for entry in chunk.seen], dtype=np.int64)
    else:
        digests = np.frombuffer(chunk.seen_digests, dtype="<u8").reshape(-1, 2).astype(np.uint64)
        stamps = np.frombuffer(chunk.seen_stamps, dtype="<i8").astype(np.int64)
        owners = np.frombuffer(chunk.seen_owners, dtype="<i4").astype(np.int64)
        if not digests.shape[0] == stamps.size == owners.size:
            raise InputError(
                f"snapshot chunk {chunk.chunk} of {chunk.topic}[{chunk.partition}] has "
                f"{digests.shape[0]} ledger id digests but {stamps.size} stamps and "
                f"{owners.size} owners, so it is corrupt; write a null value for each of "
                f"its keys (snapshot:{chunk.topic}:{chunk.partition}:...) to the state "
                "topic and restart: the partition is then rebuilt from the ledger"
            )
    return digests, stamps, owners + base


def _balances(book: Book, chunk: SnapshotChunk) -> NDArray[np.float64]:
    out = np.zeros((len(chunk.accounts), len(book.assets)))
    if not chunk.accounts:
        return out
    given = np.frombuffer(chunk.balances, dtype="<f8").reshape(len(chunk.accounts), -1)
    for k, asset in enumerate(chunk.assets):
        ix = book.assets.index.get(asset)
        if ix is None:
            if np.any(given[:, k] != 0.0):
                raise InputError(
                    f"a snapshot holds balances in {asset}, which is not configured; add it "
                    "to engine.collateral"
                )
            continue
        out[:, ix] = given[:, k]
    return out


def _load(
    book: Book,
    names: list[str],
    modes: NDArray[Any],
    balances: NDArray[np.float64] | None,
    cols: dict[str, NDArray[Any]],
) -> None:
    accounts, units, pos = book.accounts, book.units, book.positions
    n = len(names)
    accounts.append(n)
    if balances is not None:
        accounts.balance[:n] = balances
    accounts.mode[:n] = modes
    book.maybe_portfolio = bool((accounts.mode[:n] == PORTFOLIO).any())
    units.append(n)
    units.account[:n] = np.arange(n)
    accounts.cross_unit[:n] = np.arange(n)
    book.account_names.extend(names)
    book.account_index.update(zip(names, range(n), strict=True))

    account = cols["account"].astype(np.intp)
    instrument = cols["instrument"].astype(np.intp)
    flags = cols["flags"].astype(np.intp)
    m = account.shape[0]
    pos.append(m)
    pos.account[:m] = account
    pos.instrument[:m] = instrument
    pos.qty[:m] = cols["qty"]
    pos.entry[:m] = cols["entry"]
    pos.realised[:m] = cols["realised"]
    pos.leverage[:m] = cols["lev"]
    pos.isolated_margin[:m] = cols["iso"]
    pos.rows.add_many(account, instrument, np.arange(m))
    # Isolated units, per account in the order they were first created, so units (and
    # the events judged in unit order) come in the order of the book that was saved.
    isolated_rows = np.flatnonzero(flags & WITH_ISOLATED_UNIT)
    order = cols["order"].astype(np.int64)[isolated_rows]
    isolated_rows = isolated_rows[np.lexsort((order, account[isolated_rows]))]
    first_unit = units.append(isolated_rows.shape[0]) if isolated_rows.size else units.size
    iso_units = first_unit + np.arange(isolated_rows.shape[0])
    units.account[iso_units] = account[isolated_rows]
    units.row[iso_units] = isolated_rows
    pos.isolated_unit[isolated_rows] = iso_units
    for row, unit in zip(isolated_rows.tolist(), iso_units.tolist(), strict=True):
        book.isolated_units.setdefault(int(account[row]), []).append(unit)
    # Open rows: into their unit's row list and their instrument's holders.
    is_open = (flags & OPEN) != 0
    unit_of = np.where((flags & OPEN_ISOLATED) != 0, pos.isolated_unit[:m], account)
    open_rows = np.flatnonzero(is_open)
    pos.unit[open_rows] = unit_of[open_rows]
    rank = cols["rank"].astype(np.intp)[open_rows]
    _link(book, open_rows, unit_of[open_rows], rank)
    by_instrument = open_rows[np.argsort(instrument[open_rows], kind="stable")]
    bounds = np.searchsorted(instrument[by_instrument], np.arange(len(book.symbols) + 1))
    for ix in range(len(book.symbols)):
        pos.set_holders(ix, by_instrument[bounds[ix] : bounds[ix + 1]])
    book.stale_rows.clear()


def _link(
    book: Book, rows: NDArray[np.intp], unit: NDArray[np.intp], rank: NDArray[np.intp]
) -> None:
    """Unit row lists: ``rows`` grouped by ``unit``, linked in ``rank`` order (0 = head)."""
    pos, units = book.positions, book.units
    if rows.size == 0:
        return
    order = np.lexsort((rank, unit))
    grouped_rows, grouped = rows[order], unit[order]
    same_next = np.zeros(rows.shape[0], dtype=np.bool_)
    same_next[:-1] = grouped[1:] == grouped[:-1]
    nxt = np.full(rows.shape[0], NO_ROW, dtype=np.intp)
    nxt[:-1][same_next[:-1]] = grouped_rows[1:][same_next[:-1]]
    pos.unit_next[grouped_rows] = nxt
    prv = np.full(rows.shape[0], NO_ROW, dtype=np.intp)
    prv[1:][same_next[:-1]] = grouped_rows[:-1][same_next[:-1]]
    pos.unit_prev[grouped_rows] = prv
    first = np.ones(rows.shape[0], dtype=np.bool_)
    first[1:] = ~same_next[:-1]
    units.head[grouped[first]] = grouped_rows[first]
    units.open_positions[: units.size] = np.bincount(unit, minlength=units.size)
