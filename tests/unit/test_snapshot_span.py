"""An account too large for one snapshot chunk spans several and loads back exactly.

A market maker trading all day holds tens of thousands of ledger ids in the idempotency
window, or hundreds of positions: more than one chunk (800 KiB of JSON) holds. Its rows
and ids go on over consecutive chunks of the snapshot (``SnapshotChunk.continues``); the
book loaded from them must be the book they were taken from, row for row and id for id.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from typing import Any, Literal

import msgspec
import numpy as np
import pytest

from monitor.book import export_partition, load_snapshots
from monitor.book._book import Book
from monitor.book._positions import NO_ROW
from monitor.changelog import SNAPSHOT_CHUNK_BYTES
from monitor.engine import Engine, EngineConfig, restore_states, unit_record
from monitor.errors import InputError
from monitor.schema import (
    Fill,
    Instrument,
    IsolatedMargin,
    LedgerEvent,
    MarginSettings,
    PriceTick,
    SnapshotChunk,
    Tier,
    TieredMargin,
    Transfer,
)

pytestmark = pytest.mark.unit

SYMBOLS = tuple(f"C{k:03d}USDT" for k in range(400))
INSTRUMENTS = tuple(
    Instrument(
        symbol=symbol,
        kind="linear",
        quote="USDT",
        base=symbol.removesuffix("USDT"),
        margin=TieredMargin(tiers=(Tier(floor=0, cap=1e12, mmr=0.01, imr=0.02),)),
    )
    for symbol in SYMBOLS
)
CONFIG = EngineConfig()
MARKS = [PriceTick(symbol=symbol, mark_price=100.0, ts=0) for symbol in SYMBOLS]
BIG = "market-maker"
encode = msgspec.json.Encoder().encode


def small_accounts(names: Sequence[str], ts: int) -> list[LedgerEvent]:
    """A deposit and one position each."""
    events: list[LedgerEvent] = []
    for k, name in enumerate(names):
        events.append(
            Transfer(transfer_id=f"d-{name}", account=name, asset="USDT", amount=1e3, ts=ts)
        )
        events.append(
            Fill(
                fill_id=f"f-{name}",
                account=name,
                symbol=SYMBOLS[k % 5],
                side="buy",
                qty=30.0,
                price=100.0,
                ts=ts,
            )
        )
    return events


def many_ids(count: int) -> list[LedgerEvent]:
    """``count`` deposits of 1 USDT of the market maker, and three short positions."""
    events: list[LedgerEvent] = [
        Transfer(transfer_id=f"t{k}", account=BIG, asset="USDT", amount=1.0, ts=10 + k)
        for k in range(count)
    ]
    events += [
        Fill(
            fill_id=f"mm{k}",
            account=BIG,
            symbol=SYMBOLS[2 * k],
            side="sell",
            qty=count / 242,  # a short that a rise of 80% nearly wipes out
            price=100.0,
            ts=10 + count,
        )
        for k in range(3)
    ]
    return events


def many_positions() -> list[LedgerEvent]:
    """The market maker in every instrument: cross positions, then isolated ones with
    margin moved in, chosen leverages, and some positions closed (flat rows)."""
    events: list[LedgerEvent] = [
        Transfer(transfer_id="big-deposit", account=BIG, asset="USDT", amount=1e6, ts=1)
    ]
    for k, symbol in enumerate(SYMBOLS[:200]):
        side: Literal["buy", "sell"] = "buy" if k % 2 else "sell"
        events.append(
            Fill(
                fill_id=f"c{k}",
                account=BIG,
                symbol=symbol,
                side=side,
                qty=1.0 + k % 7,
                price=100.0,
                ts=2,
            )
        )
        if k % 9 == 0:
            events.append(
                MarginSettings(
                    settings_id=f"l{k}", account=BIG, symbol=symbol, leverage=5.0 + k % 4, ts=2
                )
            )
    events.append(MarginSettings(settings_id="iso", account=BIG, mode="isolated", ts=3))
    for k in range(200, 400):
        # Opened from the last instrument down: the isolated units' order is not theirs.
        symbol = SYMBOLS[599 - k]
        events.append(
            Fill(
                fill_id=f"i{k}", account=BIG, symbol=symbol, side="buy", qty=1.0, price=100.0, ts=4
            )
        )
        events.append(
            IsolatedMargin(adjustment_id=f"m{k}", account=BIG, symbol=symbol, amount=50.0, ts=4)
        )
    for k in range(0, 200, 7):  # closed again: flat rows that keep leverage and PnL
        side = "sell" if k % 2 else "buy"
        events.append(
            Fill(
                fill_id=f"x{k}",
                account=BIG,
                symbol=SYMBOLS[k],
                side=side,
                qty=1.0 + k % 7,
                price=101.0,
                ts=5,
            )
        )
    return events


def engine_of(*batches: Sequence[LedgerEvent]) -> Engine:
    engine = Engine(INSTRUMENTS, CONFIG)
    engine.apply([], MARKS, 0)
    for batch in batches:
        engine.apply(list(batch), [], 0)
    assert engine.ignored == {}
    return engine


def snapshot_of(engine: Engine, max_bytes: int, partition: int = 0) -> list[SnapshotChunk]:
    book = engine.book
    chunks = export_partition(
        book,
        np.arange(book.accounts.size),
        topic="fills",
        partition=partition,
        next_offset=9,
        ts=1,
        max_bytes=max_bytes,
        encode=encode,
    )
    assert max(len(encode(chunk)) for chunk in chunks) <= max_bytes
    return chunks


def loaded(live: Engine, chunks: Sequence[SnapshotChunk]) -> Engine:
    """A fresh engine from ``chunks``, its states restored as a restart does."""
    fresh = Engine(INSTRUMENTS, CONFIG)
    fresh.apply([], MARKS, 0)
    # Through the wire, as recovery reads them.
    decoded = [msgspec.json.decode(encode(c), type=SnapshotChunk) for c in chunks]
    assert load_snapshots(fresh.book, decoded) == []
    fresh.full_recompute()
    restore_states(fresh, {a: unit_record(live, a, 1) for a in live.book.account_names})
    return fresh


def account_view(book: Book, name: str) -> dict[str, Any]:
    """Everything the book holds of one account, in the book's order: mode, wallet, its
    rows (flat ones too), each unit's position list, its isolated units in order and its
    remembered ledger ids, oldest first."""
    a = book.account_index[name]
    pos, units = book.positions, book.units

    def row(r: int) -> tuple[Any, ...]:
        lev = float(pos.leverage[r])
        return (
            book.symbols[int(pos.instrument[r])],
            float(pos.qty[r]),
            float(pos.entry[r]),
            None if math.isnan(lev) else lev,
            float(pos.isolated_margin[r]),
            int(pos.unit[r]) != NO_ROW,
            int(pos.isolated_unit[r]) != NO_ROW,
        )

    def listed(unit: int) -> list[tuple[Any, ...]]:
        rows, r = [], int(units.head[unit])
        while r != NO_ROW:
            rows.append(row(r))
            r = int(pos.unit_next[r])
        return rows

    digests, stamps, owners = book.applied_ids.log()
    digests, stamps = digests[owners == a], stamps[owners == a]
    isolated = book.units_of(a)[1:]
    return {
        "mode": int(book.accounts.mode[a]),
        "balance": book.accounts.balance[a].tolist(),
        "rows": [row(r) for r in np.flatnonzero(pos.account[: pos.size] == a).tolist()],
        "cross": listed(int(book.accounts.cross_unit[a])),
        "isolated": [(row(int(units.row[u])), listed(u)) for u in isolated],
        "ids": list(
            zip(digests.astype("<u8").tobytes().hex(" ", 16).split(), stamps.tolist(), strict=True)
        ),
    }


def assert_same_book(restored: Engine, live: Engine) -> None:
    assert restored.book.account_names == live.book.account_names
    for name in live.book.account_names:
        assert account_view(restored.book, name) == account_view(live.book, name), name
    assert len(restored.book.applied_ids) == len(live.book.applied_ids)
    assert restored.book.applied_ids.clock_ms == live.book.applied_ids.clock_ms
    assert restored.verify() == []


def assert_same_events(restored: Engine, live: Engine, ledger: Sequence[LedgerEvent]) -> None:
    """The same ledger (old ids again, new ones), then every other mark falling by 60%
    and the rest rising by 80%, give the same events on both, in the same order for
    each account (Kafka's order: units are numbered anew, so accounts may interleave
    otherwise)."""
    swing = [
        PriceTick(symbol=s, mark_price=40.0 if k % 2 else 180.0, ts=5_000)
        for k, s in enumerate(SYMBOLS)
    ]
    events: tuple[dict[str, list[Any]], dict[str, list[Any]]] = ({}, {})
    for engine, out in ((live, events[0]), (restored, events[1])):
        for event in [*engine.apply(list(ledger), [], 4_000), *engine.apply([], swing, 5_000)]:
            out.setdefault(event.account, []).append(msgspec.to_builtins(event))
    assert events[1] == events[0]
    assert BIG in events[0]
    assert restored.ignored == live.ignored


def spanned(chunks: Sequence[SnapshotChunk]) -> list[SnapshotChunk]:
    """The chunks holding the market maker."""
    return [c for c in chunks if BIG in c.accounts]


def test_an_account_with_30000_ledger_ids_spans_chunks_and_loads_back_exactly() -> None:
    live = engine_of(small_accounts(["a1", "a2"], 0), many_ids(30_000), small_accounts(["z1"], 9))
    chunks = snapshot_of(live, 300_000)
    big = spanned(chunks)
    assert len(big) >= 3
    assert [c.continues for c in big] == [False] + [True] * (len(big) - 1)
    assert [c.accounts for c in big[1:]] == [[BIG]] * (len(big) - 1)
    assert [c.chunk for c in big] == list(range(big[0].chunk, big[0].chunk + len(big)))
    restored = loaded(live, chunks)
    assert_same_book(restored, live)
    replayed = many_ids(30_000)[29_990:]  # ids it remembers: ignored by both
    assert_same_events(restored, live, [*replayed, *small_accounts(["n1"], 30_100)])
    assert restored.ignored["duplicate"] == len(replayed)


def test_30000_ledger_ids_take_two_chunks_of_the_default_size() -> None:
    live = engine_of(many_ids(30_000))
    chunks = snapshot_of(live, SNAPSHOT_CHUNK_BYTES)
    assert [c.continues for c in chunks] == [False, True]
    assert_same_book(loaded(live, chunks), live)


def test_an_account_with_hundreds_of_positions_spans_chunks_and_loads_back_exactly() -> None:
    live = engine_of(small_accounts(["a1"], 0), many_positions(), small_accounts(["z1", "z2"], 6))
    view = account_view(live.book, BIG)
    assert len(view["rows"]) == 400  # what it covers: many rows,
    assert len(view["isolated"]) == 200  # isolated units,
    assert sum(not r[5] for r in view["rows"]) == len(range(0, 200, 7))  # flat rows,
    assert view["isolated"] != sorted(view["isolated"])  # units not in symbol order
    chunks = snapshot_of(live, 12_000)
    big = spanned(chunks)
    assert len(big) >= 3
    assert all(c.row_account for c in big[:3])  # positions, not only ids, span chunks
    assert [c.continues for c in big] == [False] + [True] * (len(big) - 1)
    restored = loaded(live, chunks)
    assert_same_book(restored, live)
    assert_same_events(restored, live, many_positions()[-20:] + small_accounts(["n1"], 7))


def test_a_spanning_account_beside_others_in_two_partitions_loads_back_exactly() -> None:
    live = engine_of(small_accounts(["a1", "a2", "a3"], 0), many_ids(5_000), many_positions())
    book = live.book
    ix = book.account_index
    chunks: list[SnapshotChunk] = []
    for partition, names in enumerate((["a1", "a3"], ["a2", BIG])):
        chunks += export_partition(
            book,
            np.array([ix[name] for name in names]),
            topic="fills",
            partition=partition,
            next_offset=3,
            ts=1,
            max_bytes=12_000,
            encode=encode,
        )
    assert len(spanned(chunks)) >= 3
    restored = loaded(live, chunks)
    assert restored.verify() == []
    for name in book.account_names:
        assert account_view(restored.book, name) == account_view(book, name), name


def chunk_pair() -> list[SnapshotChunk]:
    """Two chunks of a snapshot, the second continuing the first's last account."""
    chunks = snapshot_of(engine_of(small_accounts(["a1"], 0), many_ids(3_000)), 40_000)
    pair = spanned(chunks)[:2]
    assert [c.continues for c in pair] == [False, True]
    return pair


def test_a_chunk_continuing_an_account_the_chunk_before_does_not_end_with_is_refused() -> None:
    first, second = chunk_pair()
    unrelated = msgspec.structs.replace(second, accounts=["a1"])
    with pytest.raises(
        InputError,
        match=r"^snapshot chunk 2 of fills\[0\] continues an account that chunk 1 of its ",
    ):
        load_snapshots(Engine(INSTRUMENTS, CONFIG).book, [first, unrelated])


def test_a_chunk_continuing_across_partitions_is_refused() -> None:
    first, second = chunk_pair()
    other = msgspec.structs.replace(second, partition=1)
    with pytest.raises(InputError, match="continues an account"):
        load_snapshots(Engine(INSTRUMENTS, CONFIG).book, [first, other])


def test_a_first_chunk_that_says_it_continues_is_refused() -> None:
    _, second = chunk_pair()
    with pytest.raises(InputError, match="continues an account"):
        load_snapshots(Engine(INSTRUMENTS, CONFIG).book, [second])


def test_a_name_repeated_without_continuing_is_refused_naming_it() -> None:
    first, second = chunk_pair()
    plain = msgspec.structs.replace(second, continues=False)
    with pytest.raises(InputError, match=f"^account '{BIG}' appears twice in the snapshots"):
        load_snapshots(Engine(INSTRUMENTS, CONFIG).book, [first, plain])


def test_an_account_in_two_partitions_snapshots_is_refused_naming_it() -> None:
    live = engine_of(small_accounts(["a1", "a2"], 0))
    chunks = [snapshot_of(live, SNAPSHOT_CHUNK_BYTES, p)[0] for p in (0, 1)]
    with pytest.raises(InputError, match=r"^account 'a1' appears twice in the snapshots"):
        load_snapshots(Engine(INSTRUMENTS, CONFIG).book, chunks)


def test_a_chunk_written_before_continues_existed_loads_unchanged() -> None:
    live = engine_of(small_accounts(["a1", "a2"], 0))
    [chunk] = snapshot_of(live, SNAPSHOT_CHUNK_BYTES)
    raw = encode(chunk)
    older = raw.replace(b'"continues":false,', b"")
    assert older != raw
    decoded = msgspec.json.decode(older, type=SnapshotChunk)
    assert decoded == chunk
    assert_same_book(loaded(live, [decoded]), live)


def test_a_chunk_with_realised_pnl_per_row_loads_unchanged() -> None:
    """Earlier versions kept each row's realised PnL and wrote it; it is read and ignored
    (the wallet holds it), and a chunk written now has none."""
    live = engine_of(many_positions())
    chunks = snapshot_of(live, SNAPSHOT_CHUNK_BYTES)
    raw = [encode(c) for c in chunks]
    assert all(b'"realised":""' in r for r in raw)
    older = []
    for chunk, text in zip(chunks, raw, strict=True):
        rows = len(np.frombuffer(chunk.qty, dtype="<f8"))
        column = base64.b64encode(np.arange(rows, dtype="<f8").tobytes()).decode()
        older.append(text.replace(b'"realised":""', f'"realised":"{column}"'.encode()))
    decoded = [msgspec.json.decode(r, type=SnapshotChunk) for r in older]
    assert any(len(c.realised) > 0 for c in decoded)
    assert_same_book(loaded(live, decoded), live)


def test_an_account_of_which_not_one_row_fits_a_chunk_is_refused_in_one_line() -> None:
    live = engine_of(many_positions())
    [no_accounts] = snapshot_of(engine_of(), SNAPSHOT_CHUNK_BYTES)
    # Room for the name, mode and balances, not for a position row (about 90 bytes).
    max_bytes = len(encode(no_accounts)) + 80
    with pytest.raises(InputError, match=f"^account '{BIG}': not even one of its position rows"):
        snapshot_of(live, max_bytes)
