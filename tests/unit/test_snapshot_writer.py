"""The snapshot writer: a partition's book copied in one cycle, written over the next ones.

The book moves on while the chunks are written; what lands in the changelog must be the
book as of the copy, whole, in a slot of its own, with the older snapshot in use until
the last chunk is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import msgspec
import pytest

import monitor.snapshots as snapshots_module
from monitor.book import export_partition, load_snapshots
from monitor.changelog import SNAPSHOT_CHUNK_BYTES, RestoredState, _fold
from monitor.engine import Engine
from monitor.metrics import Metrics
from monitor.partitions import AccountPartitions
from monitor.schema import Fill, LedgerEvent, PriceTick, Transfer
from monitor.snapshots import Snapshots
from streams import OutboundRecord, TopicPartition
from tests.property.test_engine_incremental import BASE_PRICE, CONFIG, INSTRUMENTS
from tests.unit.test_changelog_snapshots import Record
from tests.unit.test_snapshot_span import account_view

pytestmark = pytest.mark.unit

TP = TopicPartition("fills", 0)
OWNED = frozenset({TP})
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def ledger(first: int, count: int, seq: int) -> list[LedgerEvent]:
    """Deposits and a fill each for accounts ``first`` to ``first + count``."""
    events: list[LedgerEvent] = []
    for k in range(first, first + count):
        account = f"acct-{k:05d}"
        events.append(
            Transfer(transfer_id=f"t{seq}-{k}", account=account, asset="USDT", amount=1e4, ts=seq)
        )
        symbol = SYMBOLS[k % 3]
        events.append(
            Fill(
                fill_id=f"f{seq}-{k}",
                account=account,
                symbol=symbol,
                side="buy" if (k + seq) % 2 else "sell",
                qty=0.01 * (1 + k % 7),
                price=BASE_PRICE[symbol],
                ts=seq,
            )
        )
    return events


class Rig:
    """An engine whose every account comes from ``TP``, and a snapshot writer of it."""

    def __init__(self, accounts: int) -> None:
        self.engine = Engine(INSTRUMENTS, CONFIG)
        prices = [PriceTick(symbol=s, mark_price=p, ts=0) for s, p in BASE_PRICE.items()]
        self.partitions = AccountPartitions()
        self.offset = 0
        self.apply(ledger(0, accounts, 0), prices)
        self.metrics = Metrics()
        self.writer = Snapshots("liqmon-state", 1e-6, self.metrics)
        self.writer.schedule(OWNED, {})

    def apply(self, events: Sequence[LedgerEvent], prices: Sequence[PriceTick] = ()) -> None:
        self.engine.apply(list(events), list(prices), 0)
        self.partitions.note_many([e.account for e in events], TP.partition)
        self.partitions.settle(self.engine.book)
        self.offset += len(events)

    def written(self) -> float:
        return self.metrics.snapshots_written._value.get()

    def take(self, owned: frozenset[TopicPartition] = OWNED) -> list[OutboundRecord]:
        return self.writer.take(self.engine, owned, self.partitions, {TP: self.offset}, 7)

    def until(self, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 5
        while not condition():
            assert time.monotonic() < deadline, "the condition did not come"

    def expected(self) -> list[bytes]:
        """The snapshot of the book as it is now, exported at once."""
        encode = msgspec.json.Encoder().encode
        book = self.engine.book
        chunks = export_partition(
            book,
            self.partitions.accounts_of(book, TP.partition),
            topic=TP.topic,
            partition=TP.partition,
            next_offset=self.offset,
            ts=7,
            max_bytes=snapshots_module.SNAPSHOT_CHUNK_BYTES,
            encode=encode,
        )
        return [encode(chunk) for chunk in chunks]

    def write_one(
        self, between: Callable[[int], None] = lambda _: None
    ) -> list[list[OutboundRecord]]:
        """Take a snapshot, calling ``between`` (the cycle number) before each later
        cycle; the records of each cycle, the copy's (none) first."""
        self.until(lambda: self.writer.due(OWNED))
        done = self.written() + 1
        cycles = [self.take()]
        while self.written() < done:
            between(len(cycles))
            cycles.append(self.take())
            assert len(cycles) < 1000
        return cycles


def fold(*records: Sequence[OutboundRecord]) -> RestoredState:
    restored = RestoredState()
    for batch in records:
        _fold(restored, [Record(r.key, r.value) for r in batch])
    return restored


def flat(cycles: Sequence[Sequence[OutboundRecord]]) -> list[OutboundRecord]:
    return [r for cycle in cycles for r in cycle]


@pytest.fixture
def small_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of about 20 kB, one a cycle: a few hundred accounts span many cycles."""
    monkeypatch.setattr(snapshots_module, "SNAPSHOT_CHUNK_BYTES", 20_000)
    monkeypatch.setattr(snapshots_module, "_STEP_BYTES", 1)


@pytest.mark.usefixtures("small_steps")
def test_the_snapshot_is_the_book_of_the_copy_though_the_book_moves_on() -> None:
    rig = Rig(600)
    expected, offset = rig.expected(), rig.offset
    # Each later cycle opens more positions, on old and new accounts alike.
    cycles = rig.write_one(lambda n: rig.apply(ledger(300 + 10 * n, 20, n)))
    assert cycles[0] == []  # the copy's cycle writes nothing
    written = [r for r in flat(cycles) if r.value is not None]
    assert len(written) == len(expected) >= 5
    assert len(cycles) >= len(expected) + 1  # one chunk a cycle, after the copy
    assert [r.value for r in written] == expected
    assert rig.expected() != expected  # the book did move on
    snapshot = fold(flat(cycles)).snapshot(TP)
    assert snapshot is not None
    assert {c.next_offset for c in snapshot} == {offset}
    assert len(rig.writer._keys) == 1
    assert max(len(r.value or b"") for r in written) <= 20_000


@pytest.mark.usefixtures("small_steps")
def test_the_older_snapshot_stays_in_use_until_the_newer_is_whole() -> None:
    rig = Rig(400)
    first = flat(rig.write_one())
    older = fold(first).snapshot(TP)
    assert older is not None
    assert all(r.key is not None and r.key.startswith(b"snapshot:fills:0:0:") for r in first)
    rig.apply(ledger(400, 50, 1))
    second = rig.write_one()
    for cut in range(1, len(second)):
        # A crash after ``cut`` cycles of the second: the first is what recovery loads.
        restored = fold(first, flat(second[:cut]))
        assert restored.snapshot(TP) == older
    restored = fold(first, flat(second))
    newer = restored.snapshot(TP)
    assert newer is not None
    assert newer != older
    assert sum(len(c.accounts) for c in newer) == 450
    assert set(restored.snapshot_keys(TP).counts) == {1}  # the first slot's keys nulled
    assert restored.snapshot_keys(TP).counts[1] == len(newer)


def test_a_revoked_partitions_snapshot_is_dropped() -> None:
    rig = Rig(50)
    rig.until(lambda: rig.writer.due(OWNED))
    assert rig.take() == []  # the copy
    assert rig.writer.due(OWNED)
    assert rig.take(frozenset()) == []
    assert rig.writer._writing is None
    assert rig.written() == 0


def test_a_whole_snapshot_of_a_default_sized_book_fits_one_cycles_step() -> None:
    rig = Rig(300)
    cycles = rig.write_one()
    assert len(cycles) == 2  # the copy, then every chunk (one: 300 accounts are small)
    assert [r.value for r in cycles[1]] == rig.expected()
    assert len(rig.expected()[0]) < SNAPSHOT_CHUNK_BYTES
    assert rig.metrics.snapshot_duration._value.get() > 0


@pytest.mark.usefixtures("small_steps")
def test_an_account_too_large_for_a_chunk_spans_several_and_loads_back_exactly() -> None:
    rig = Rig(300)
    first = flat(rig.write_one())
    older = fold(first).snapshot(TP)
    assert older is not None
    # A market maker in the middle of the partition: 2,000 ledger ids, about 75 kB.
    rig.apply(
        [
            Transfer(transfer_id=f"mm{k}", account="acct-00150", asset="USDT", amount=1.0, ts=k)
            for k in range(2_000)
        ]
    )
    second = rig.write_one()
    expected = rig.expected()  # the book as copied: it did not move meanwhile
    for cut in range(1, len(second)):
        # A crash after ``cut`` cycles of the second: the first is what recovery loads.
        assert fold(first, flat(second[:cut])).snapshot(TP) == older
    snapshot = fold(first, flat(second)).snapshot(TP)
    assert snapshot is not None
    assert [r.value for r in flat(second) if r.value is not None] == expected
    assert max(len(value) for value in expected) <= 20_000
    spanning = [chunk for chunk in snapshot if "acct-00150" in chunk.accounts]
    assert len(spanning) >= 3
    assert [chunk.continues for chunk in spanning] == [False] + [True] * (len(spanning) - 1)
    fresh = Engine(INSTRUMENTS, CONFIG)
    fresh.apply([], [PriceTick(symbol=s, mark_price=p, ts=0) for s, p in BASE_PRICE.items()], 0)
    assert load_snapshots(fresh.book, snapshot) == []
    fresh.full_recompute()
    assert fresh.verify() == []
    book = rig.engine.book
    assert fresh.book.account_names == book.account_names
    for name in book.account_names:
        assert account_view(fresh.book, name) == account_view(book, name), name


def test_a_chunk_too_small_for_one_position_row_drops_the_snapshot_not_the_monitor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = Rig(30)
    first = flat(rig.write_one())
    assert fold(first).snapshot(TP) is not None
    monkeypatch.setattr(snapshots_module, "SNAPSHOT_CHUNK_BYTES", 100)  # not one row fits
    rig.until(lambda: rig.writer.due(OWNED))
    assert rig.take() == []  # the copy
    assert rig.take() == []  # planning finds no room for a row: dropped, logged
    assert rig.writer._writing is None
    assert rig.written() == 1
    assert fold(first).snapshot(TP) is not None  # the older one stays in use


def test_a_snapshot_dropped_half_way_leaves_no_stray_keys_after_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = Rig(400)
    monkeypatch.setattr(snapshots_module, "SNAPSHOT_CHUNK_BYTES", 10_000)
    monkeypatch.setattr(snapshots_module, "_STEP_BYTES", 1)
    first = flat(rig.write_one())  # slot 0, complete
    rig.until(lambda: rig.writer.due(OWNED))
    dropped = [rig.take()]  # the copy
    while len(flat(dropped)) < 6:  # six chunks of the next, in slot 1
        dropped.append(rig.take())
    assert rig.take(frozenset()) == []  # revoked half-way, then given back (no rebuild)
    monkeypatch.setattr(snapshots_module, "SNAPSHOT_CHUNK_BYTES", 800 * 1024)
    last = rig.write_one()  # slot 1 again, now a single chunk
    restored = fold(first, flat(dropped), flat(last))
    assert restored.snapshot_keys(TP).counts == {1: 1}  # chunks 1-5 of slot 1 nulled too
    snapshot = restored.snapshot(TP)
    assert snapshot is not None
    assert sum(len(c.accounts) for c in snapshot) == 400
