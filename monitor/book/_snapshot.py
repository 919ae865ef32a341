"""Loading snapshots of accounts into an empty book (taking them: ``_snapshot_image``).

A snapshot holds what the ledger built for the accounts of one ``fills`` partition:
wallets, margin modes, every position row (flat rows too: they keep the chosen
leverage, realised PnL and the isolated unit that a later open reuses) and the ledger
ids applied within the idempotency window. Margin states are not in it: recovery
restores them from the changelog, which is never older than a snapshot. An account
too large for one chunk spans several consecutive ones (``SnapshotChunk.continues``).

Loading is vectorised (the shape of ``load_cross_accounts``): a million accounts with
three million positions load in seconds, where replaying their ledger took minutes.
Figures are not computed here: follow with ``Engine.full_recompute()``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.book._book import Book
from monitor.book._columns import Index
from monitor.book._positions import NO_ROW
from monitor.book._seen import digests_of
from monitor.book._tables import PORTFOLIO
from monitor.errors import InputError
from monitor.schema import SnapshotChunk

__all__ = ["OPEN", "OPEN_ISOLATED", "WITH_ISOLATED_UNIT", "load_snapshots"]

OPEN = 1
OPEN_ISOLATED = 2
WITH_ISOLATED_UNIT = 4

_REBUILD = (
    "write a null value for each of its keys (snapshot:{chunk.topic}:{chunk.partition}:*) to "
    "the state topic and restart: the partition is then rebuilt from the ledger"
)


# Position columns of a chunk: name in ``_load`` -> (SnapshotChunk field, dtype).
_COLUMNS: dict[str, tuple[str, str]] = {
    "account": ("row_account", "<i4"),
    "instrument": ("row_symbol", "<i4"),
    "qty": ("qty", "<f8"),
    "entry": ("entry", "<f8"),
    "lev": ("leverage", "<f8"),
    "iso": ("isolated_margin", "<f8"),
    "flags": ("row_flags", "<i1"),
    "rank": ("row_rank", "<i4"),
    "order": ("row_unit_order", "<i8"),
}


def load_snapshots(book: Book, chunks: Sequence[SnapshotChunk]) -> list[str]:
    """Load every account of ``chunks`` (each snapshot's in chunk order, so that an
    account spanning chunks goes on from one to the next) into an empty ``book``; return
    the symbols of position rows that were skipped because the instrument is no longer
    configured."""
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
    symbol_maps: list[Index] = []  # per chunk, its symbol table onto the book
    seen: list[tuple[NDArray[np.uint64], NDArray[np.int64], NDArray[np.int64]]] = []
    bases: list[int] = []  # per chunk, the book's index of its first account
    clock = 0
    index = book.instrument_index
    previous: SnapshotChunk | None = None
    for chunk in chunks:
        # A chunk that continues an account names it again first: that name, mode and
        # balances were taken from the chunk before.
        again = _continued(previous, chunk)
        base = len(names) - again
        bases.append(base)
        names.extend(chunk.accounts[again:])
        modes.append(np.frombuffer(chunk.modes, dtype="<i1")[again:])
        balances.append(_balances(book, chunk)[again:])
        symbol_maps.append(np.array([index.get(s, -1) for s in chunk.symbols], dtype=np.intp))
        for key, (field, dtype) in _COLUMNS.items():
            parts[key].append(np.frombuffer(getattr(chunk, field), dtype=dtype))
        seen.append(_seen_of(chunk, base))
        clock = max(clock, chunk.ledger_clock)
        previous = chunk
    if len(set(names)) != len(names):
        twice = next(name for name, count in Counter(names).items() if count > 1)
        raise InputError(
            f"account {twice!r} appears twice in the snapshots (in two partitions', or in "
            "chunks of one that do not continue it); each account has one partition"
        )
    cols = {k: np.concatenate(v) if v else np.empty(0) for k, v in parts.items()}
    rows_per_chunk = np.array([p.shape[0] for p in parts["account"]], dtype=np.intp)
    account = cols["account"].astype(np.intp)
    account += np.repeat(np.array(bases, dtype=np.intp), rows_per_chunk)
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


def _continued(previous: SnapshotChunk | None, chunk: SnapshotChunk) -> int:
    """1 when ``chunk`` continues the account ``previous`` (the chunk before it in the
    list) ends with, else 0; a chunk that says it continues what is not there is corrupt."""
    if not chunk.continues:
        return 0
    width = 8 * len(chunk.assets)  # one account's balances
    if not (
        previous is not None
        and (previous.topic, previous.partition, previous.next_offset, previous.chunk + 1)
        == (chunk.topic, chunk.partition, chunk.next_offset, chunk.chunk)
        and chunk.accounts
        and previous.accounts[-1:] == chunk.accounts[:1]
        and previous.assets == chunk.assets
        and previous.modes[-1:] == chunk.modes[:1]
        and previous.balances[len(previous.balances) - width :] == chunk.balances[:width]
    ):
        raise InputError(
            f"snapshot chunk {chunk.chunk} of {chunk.topic}[{chunk.partition}] continues an "
            f"account that chunk {chunk.chunk - 1} of its snapshot does not end with, so it "
            f"is corrupt; {_REBUILD.format(chunk=chunk)}"
        )
    return 1


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
                f"{owners.size} owners, so it is corrupt; {_REBUILD.format(chunk=chunk)}"
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
    book.account_index.add_many(names)

    account = cols["account"].astype(np.intp)
    instrument = cols["instrument"].astype(np.intp)
    flags = cols["flags"].astype(np.intp)
    m = account.shape[0]
    pos.append(m)
    pos.account[:m] = account
    pos.instrument[:m] = instrument
    pos.qty[:m] = cols["qty"]
    pos.entry[:m] = cols["entry"]
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
    # Each account's isolated units are consecutive, oldest first: link each to the one
    # before it, and the account to its last.
    owner = account[isolated_rows]
    same = np.zeros(owner.shape[0], dtype=np.bool_)
    np.equal(owner[1:], owner[:-1], out=same[1:])
    units.previous_isolated[iso_units[same]] = iso_units[same] - 1
    last = np.ones(owner.shape[0], dtype=np.bool_)
    last[:-1] = ~same[1:]
    accounts.last_isolated[owner[last]] = iso_units[last]
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


def _link(book: Book, rows: Index, unit: Index, rank: Index) -> None:
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
