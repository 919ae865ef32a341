"""The snapshot writer: a partition's book copied over a few cycles, written over the next.

The book moves on while the chunks are written; what lands in the changelog must be the
book as of the copy, whole, in a slot of its own, with the older snapshot in use until
the last chunk is written.
"""

from __future__ import annotations

import importlib
import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import msgspec
import pytest
from numpy.typing import NDArray
from structlog.testing import capture_logs

import monitor.snapshots as snapshots_module
from monitor.book import PartitionImage, export_partition, load_snapshots
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

    def copy_steps(self, step_items: int) -> Iterator[PartitionImage | None]:
        """The partition's image taken in steps of ``step_items`` (the image last)."""
        book = self.engine.book
        return PartitionImage.in_steps(
            book,
            self.partitions.accounts_of(book, TP.partition),
            topic=TP.topic,
            partition=TP.partition,
            next_offset=self.offset,
            ts=7,
            step_items=step_items,
        )

    def take(
        self, owned: frozenset[TopicPartition] = OWNED, *, may_begin: bool = True
    ) -> list[OutboundRecord]:
        return self.writer.take(
            self.engine, owned, self.partitions, {TP: self.offset}, 7, may_begin=may_begin
        )

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
        cycle once the copy is taken (the service holds the ledger until then); the
        records of each cycle, the copy's (none) first."""
        self.until(lambda: self.writer.due(OWNED))
        done = self.written() + 1
        cycles = [self.take()]
        deadline = time.monotonic() + 10
        while self.written() < done:
            if not self.writer.copying(OWNED):
                between(len(cycles))
            cycles.append(self.take())
            assert time.monotonic() < deadline, "the snapshot was not written"
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
    monkeypatch.setattr(snapshots_module, "_WRITE_BYTES_PER_S", float("inf"))


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


def chunks_of(image: PartitionImage) -> list[bytes]:
    encode = msgspec.json.Encoder().encode
    pieces = list(image.plan(snapshots_module.SNAPSHOT_CHUNK_BYTES, encode))
    return [encode(image.chunk(piece, n, len(pieces))) for n, piece in enumerate(pieces)]


def copy_in_steps(rig: Rig, step_items: int) -> tuple[PartitionImage, int]:
    """The partition's image taken in steps of ``step_items``, and how many steps."""
    steps = rig.copy_steps(step_items)
    taken = [next(steps)]
    while taken[-1] is None:
        taken.append(next(steps))
    image = taken[-1]
    assert image is not None
    return image, len(taken) - 1


@pytest.mark.usefixtures("small_steps")
@pytest.mark.parametrize("step_items", [1, 7, 64, 1_000, 10**6])
def test_a_copy_taken_in_steps_is_the_copy_taken_at_once(step_items: int) -> None:
    rig = Rig(300)
    rig.apply(ledger(0, 300, 1))  # two fills and two deposits an account: 600 rows, 1,200 ids
    image, steps = copy_in_steps(rig, step_items)
    assert chunks_of(image) == rig.expected()
    assert len(rig.expected()) >= 4
    book = rig.engine.book
    rows, ids = book.positions.size, len(book.applied_ids)
    if step_items < rows:  # a step reads at most step_items rows or ids
        assert steps >= -(-rows // step_items) + -(-ids // step_items)


def test_each_step_of_a_copy_reads_at_most_its_share(monkeypatch: pytest.MonkeyPatch) -> None:
    """Between two pauses a copy makes at most one compiled pass: over at most
    ``step_items`` rows or ids, or copying whole blocks' rows."""
    rig = Rig(400)
    calls: list[tuple[str, int]] = []
    copy_module = importlib.import_module("monitor.book._snapshot_copy")
    monkeypatch.setattr(copy_module, "BLOCK", 16)  # copied a block at a time
    group, copy_rows = copy_module.group, copy_module.copy_rows

    def spy_group(owner: NDArray[Any], *args: Any) -> Any:
        calls.append(("group", int(owner.shape[0])))
        return group(owner, *args)

    def spy_copy(rows: NDArray[Any], *args: Any) -> Any:
        calls.append(("copy", int(rows.shape[0])))
        return copy_rows(rows, *args)

    monkeypatch.setattr(copy_module, "group", spy_group)
    monkeypatch.setattr(copy_module, "copy_rows", spy_copy)
    book = rig.engine.book
    steps = rig.copy_steps(64)
    per_step: list[list[tuple[str, int]]] = []
    while (image := next(steps)) is None:
        per_step.append(calls[:])
        calls.clear()
    per_step.append(calls[:])
    assert all(len(step) <= 1 for step in per_step), per_step
    passes = [call for step in per_step for call in step]
    rows, ids = book.positions.size, len(book.applied_ids)
    reads = [size for kind, size in passes if kind == "group"]
    assert max(reads) <= 64
    assert sum(reads) == rows + ids  # every row and id read once, 64 at a time
    copies = [size for kind, size in passes if kind == "copy"]
    assert sum(copies) == rows  # every row copied, in parts
    assert len(copies) > 1
    assert max(copies) <= 64 // 4  # whole blocks of 16 accounts of one row each
    assert chunks_of(image) == rig.expected()


def test_a_book_that_moves_while_its_copy_is_taken_voids_it_and_the_next_turn_writes() -> None:
    rig = Rig(300)
    rig.until(lambda: rig.writer.due(OWNED))
    assert rig.take() == []  # the copy begins
    assert rig.writer.copying(OWNED)
    rig.apply(ledger(300, 5, 1))  # what the service never does: the ledger moves meanwhile
    with capture_logs() as logs:
        assert rig.take() == []
    assert [entry["event"] for entry in logs] == ["snapshot not written"]
    assert "hold the ledger" in logs[0]["error"]
    assert rig.writer._writing is None
    assert not rig.writer.copying(OWNED)
    assert rig.written() == 0
    cycles = rig.write_one()  # the next turn copies afresh
    assert [r.value for r in flat(cycles) if r.value is not None] == rig.expected()


def test_chunks_are_written_no_faster_than_the_write_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A chunk of ``size`` bytes lets the next go ``size / _WRITE_BYTES_PER_S`` later,
    however many cycles come meanwhile (they write nothing)."""
    monkeypatch.setattr(snapshots_module, "SNAPSHOT_CHUNK_BYTES", 20_000)
    monkeypatch.setattr(snapshots_module, "_STEP_BYTES", 1)
    monkeypatch.setattr(snapshots_module, "_WRITE_BYTES_PER_S", 100_000)
    now = [0.0]
    rig = Rig(600)
    rig.writer = Snapshots("liqmon-state", 1.0, rig.metrics, clock=lambda: now[0])
    rig.writer.schedule(OWNED, {})
    written: list[tuple[float, int]] = []  # (clock, bytes) of each cycle that wrote
    while rig.written() == 0:
        now[0] += 0.01  # a cycle every 10 ms
        records = rig.take()
        if records:
            written.append((now[0], sum(len(r.value or b"") for r in records)))
        assert now[0] < 100
    assert len(written) >= 5
    for (at, size), (later, _) in itertools.pairwise(written):
        assert later - at >= size / 100_000 - 1e-9  # 20 kB: 0.2 s, twenty cycles
        assert later - at < size / 100_000 + 0.02
