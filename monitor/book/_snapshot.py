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

from collections.abc import Callable, Sequence
from typing import Any

import msgspec
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
    "export_accounts",
    "export_partition",
    "load_snapshots",
]

_ACCOUNTS_PER_CHUNK = 2_000

OPEN = 1
OPEN_ISOLATED = 2
WITH_ISOLATED_UNIT = 4


def _f64(values: NDArray[Any]) -> bytes:
    return np.ascontiguousarray(values, dtype="<f8").tobytes()


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
    members = _Members.of(book, accounts)
    return members.chunk(
        book, 0, accounts.shape[0], topic=topic, partition=partition, next_offset=next_offset, ts=ts
    )


class _Members:
    """The rows, list ranks and ledger ids of some accounts, found in one pass over the
    book, so that each chunk of a partition's snapshot costs only its own accounts."""

    def __init__(
        self,
        accounts: NDArray[np.intp],
        rows: NDArray[np.intp],
        row_place: NDArray[np.intp],
        ranks: NDArray[np.intp],
        seen: tuple[NDArray[np.uint64], NDArray[np.int64], NDArray[np.int64]],
        seen_place: NDArray[np.intp],
    ) -> None:
        self.accounts = accounts  # ascending
        self.rows, self.row_place, self.ranks = rows, row_place, ranks
        self.seen_digests, self.seen_stamps, _ = seen
        self.seen_place = seen_place
        # Both grouped by account (stable: original order within an account), so that a
        # chunk finds its own by two binary searches, not by a pass over the partition.
        self._row_order = np.argsort(row_place, kind="stable")
        self._row_places = row_place[self._row_order]
        self._seen_order = np.argsort(seen_place, kind="stable")
        self._seen_places = seen_place[self._seen_order]

    @classmethod
    def of(cls, book: Book, accounts: NDArray[np.intp]) -> _Members:
        pos = book.positions
        member = np.zeros(book.accounts.size, dtype=bool)
        member[accounts] = True
        rows = np.flatnonzero(member[pos.account[: pos.size]])
        row_place = np.searchsorted(accounts, pos.account[rows])
        seen = book.applied_ids.owned_by(member)  # oldest first
        seen_place = np.searchsorted(accounts, seen[2])
        return cls(accounts, rows, row_place, _list_ranks(book, rows), seen, seen_place)

    def chunk(
        self,
        book: Book,
        first: int,
        end: int,
        *,
        topic: str,
        partition: int,
        next_offset: int,
        ts: int,
    ) -> SnapshotChunk:
        """The chunk of ``accounts[first:end]``."""
        pos = book.positions
        accounts = self.accounts[first:end]
        take = _between(self._row_order, self._row_places, first, end)
        rows = self.rows[take]
        unit = pos.unit[rows]
        own = pos.isolated_unit[rows]
        flags = (
            np.where(unit != NO_ROW, OPEN, 0)
            | np.where((unit != NO_ROW) & (unit == own), OPEN_ISOLATED, 0)
            | np.where(own != NO_ROW, WITH_ISOLATED_UNIT, 0)
        )
        picked = _between(self._seen_order, self._seen_places, first, end)
        return SnapshotChunk(
            topic=topic,
            partition=partition,
            next_offset=next_offset,
            chunk=0,
            chunks=1,
            ts=ts,
            ledger_clock=book.applied_ids.clock_ms,
            assets=book.assets.names,
            symbols=book.symbols,
            accounts=[book.account_names[ix] for ix in accounts.tolist()],
            modes=_i8(book.accounts.mode[accounts]),
            balances=_f64(book.accounts.balance[accounts]),
            row_account=_i32(self.row_place[take] - first),
            row_symbol=_i32(pos.instrument[rows]),
            qty=_f64(pos.qty[rows]),
            entry=_f64(pos.entry[rows]),
            realised=_f64(pos.realised[rows]),
            leverage=_f64(pos.leverage[rows]),
            isolated_margin=_f64(pos.isolated_margin[rows]),
            row_flags=_i8(flags),
            row_rank=_i32(self.ranks[take]),
            row_unit_order=np.ascontiguousarray(own, dtype="<i8").tobytes(),
            seen_digests=np.ascontiguousarray(self.seen_digests[picked], dtype="<u8").tobytes(),
            seen_stamps=np.ascontiguousarray(self.seen_stamps[picked], dtype="<i8").tobytes(),
            seen_owners=_i32(self.seen_place[picked] - first),
        )


def _between(
    order: NDArray[np.intp], places: NDArray[np.intp], first: int, end: int
) -> NDArray[np.intp]:
    """The indices ``i`` (ascending) with ``first <= place[i] < end``, given ``order``
    sorting the places stably and ``places = place[order]``."""
    lo, hi = np.searchsorted(places, (first, end))
    found: NDArray[np.intp] = np.sort(order[lo:hi])
    return found


def _list_ranks(book: Book, rows: NDArray[np.intp]) -> NDArray[np.intp]:
    """Each row's place in its unit's position list (0 = head), -1 for flat rows; one
    vectorised step per position of the longest list."""
    pos, units = book.positions, book.units
    rank = np.full(pos.size, -1, dtype=np.intp)
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
    result: NDArray[np.intp] = rank[rows]
    return result


def export_partition(
    book: Book,
    accounts: NDArray[np.intp],
    *,
    topic: str,
    partition: int,
    next_offset: int,
    ts: int,
    max_bytes: int,
    encode: Callable[[SnapshotChunk], bytes],
) -> list[SnapshotChunk]:
    """The snapshot of ``accounts`` as chunks that each encode to at most ``max_bytes``
    (an account too large for a chunk alone raises ``InputError``). The book is read
    once for all of them, then each chunk takes its own accounts' share."""
    members = _Members.of(book, np.sort(accounts))
    size = members.accounts.size
    pending = [
        (k, min(k + _ACCOUNTS_PER_CHUNK, size)) for k in range(0, max(1, size), _ACCOUNTS_PER_CHUNK)
    ]
    chunks: list[SnapshotChunk] = []
    while pending:
        first, end = pending.pop(0)
        chunk = members.chunk(
            book, first, end, topic=topic, partition=partition, next_offset=next_offset, ts=ts
        )
        if len(encode(chunk)) <= max_bytes:
            chunks.append(chunk)
        elif end - first > 1:
            half = first + (end - first) // 2
            pending[:0] = [(first, half), (half, end)]
        else:
            name = book.account_names[int(members.accounts[first])]
            raise InputError(f"account {name!r} alone does not fit a snapshot chunk")
    total = len(chunks)
    return [msgspec.structs.replace(c, chunk=n, chunks=total) for n, c in enumerate(chunks)]


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
                f"its keys (snapshot:{chunk.topic}:{chunk.partition}:<n>) to the state "
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
