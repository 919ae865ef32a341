"""Applied ledger ids are remembered for a window of event time, then forgotten."""

from __future__ import annotations

import hashlib
import random

import msgspec
import numpy as np
import pytest

from monitor.book import export_accounts, load_snapshots
from monitor.book._seen import SeenIds, digest_of, digests_of
from monitor.engine import Engine, EngineConfig
from monitor.errors import ConfigError, InputError
from monitor.schema import Instrument, Tier, TieredMargin, Transfer

pytestmark = pytest.mark.unit

BTC = Instrument(
    symbol="BTCUSDT",
    kind="linear",
    quote="USDT",
    base="BTC",
    margin=TieredMargin(tiers=(Tier(floor=0, cap=1e12, mmr=0.004, imr=0.01),)),
)


def test_an_id_is_remembered_within_the_window() -> None:
    seen = SeenIds(window_ms=1_000)
    seen.add(("fill", "f1"), 100)
    seen.add(("fill", "f2"), 1_100)
    assert ("fill", "f1") in seen
    assert len(seen) == 2


def test_an_id_is_forgotten_once_newer_events_pass_the_window() -> None:
    seen = SeenIds(window_ms=1_000)
    seen.add(("fill", "f1"), 100)
    seen.add(("fill", "f2"), 1_101)
    assert ("fill", "f1") not in seen
    assert ("fill", "f2") in seen


def test_without_a_window_nothing_is_forgotten() -> None:
    seen = SeenIds()
    seen.add(("fill", "f1"), 0)
    seen.add(("fill", "f2"), 10**12)
    assert ("fill", "f1") in seen


def test_a_late_event_is_remembered_for_a_whole_window_after_it_was_applied() -> None:
    seen = SeenIds(window_ms=1_000)
    seen.add(("fill", "new"), 5_000)
    seen.add(("fill", "late"), 100)  # far behind the clock, yet applied now
    seen.add(("fill", "next"), 5_900)
    assert ("fill", "late") in seen


def test_memory_stays_bounded_when_every_id_is_inside_the_window() -> None:
    seen = SeenIds(window_ms=10**12, max_ids=100)
    for n in range(1_000):
        seen.add(("fill", str(n)), n)
    assert len(seen) == 100
    assert ("fill", "999") in seen
    assert ("fill", "899") not in seen


def test_a_re_applied_id_is_not_evicted_by_its_older_arrival() -> None:
    seen = SeenIds(window_ms=1_000)
    seen.add(("fill", "f1"), 0)
    seen.add(("fill", "f2"), 2_000)  # evicts f1
    seen.add(("fill", "f1"), 2_500)  # applied again: remembered anew
    seen.add(("fill", "f3"), 2_600)
    assert ("fill", "f1") in seen


def deposit(transfer_id: str, ts: int) -> Transfer:
    return Transfer(transfer_id=transfer_id, account="a", asset="USDT", amount=10.0, ts=ts)


def test_engine_drops_a_duplicate_inside_the_window_and_applies_one_after_it() -> None:
    engine = Engine([BTC], EngineConfig(idempotency_window_s=60.0))
    engine.apply([deposit("t1", 0), deposit("t1", 30_000)], [], now_ms=0)
    assert engine.ignored == {"duplicate": 1}
    assert engine.account_risk("a").equity == pytest.approx(10.0)
    engine.apply([deposit("t2", 120_000), deposit("t1", 120_001)], [], now_ms=0)
    assert engine.account_risk("a").equity == pytest.approx(30.0)


def test_a_non_positive_window_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="idempotency_window_s"):
        EngineConfig(idempotency_window_s=0.0)


class PlainSeen:
    """The rule stated plainly, as the reference: a dict of key -> stamp and the keys in
    the order applied; forget from the oldest while out of the window or over the cap."""

    def __init__(self, window_ms: int | None, max_ids: int | None) -> None:
        self.window_ms, self.max_ids = window_ms, max_ids
        self.stamps: dict[tuple[str, str], int] = {}
        self.order: list[tuple[int, tuple[str, str]]] = []
        self.clock = 0

    def add(self, key: tuple[str, str], ts: int) -> None:
        self.clock = max(self.clock, ts)
        self.stamps[key] = self.clock
        self.order.append((self.clock, key))
        horizon = self.clock - self.window_ms if self.window_ms is not None else -1
        while self.order and (
            self.order[0][0] < horizon
            or (self.max_ids is not None and len(self.stamps) > self.max_ids)
        ):
            stamp, key = self.order.pop(0)
            if self.stamps.get(key) == stamp:
                del self.stamps[key]


@pytest.mark.parametrize(
    ("window_ms", "max_ids"), [(None, None), (400, None), (None, 3_000), (900, 5_000)]
)
def test_many_ids_with_duplicates_are_remembered_as_the_plain_rule_says(
    window_ms: int | None, max_ids: int | None
) -> None:
    """Enough ids for the index to merge many times, half of them seen before: every
    membership answer equals the plain reference's."""
    rng = random.Random(7)
    seen, plain = SeenIds(window_ms, max_ids), PlainSeen(window_ms, max_ids)
    ts = 0
    for n in range(30_000):
        ts += rng.randrange(0, 3)
        key = ("fill", f"f{rng.randrange(0, n + 1)}") if rng.random() < 0.5 else ("fill", f"n{n}")
        assert (key in seen) == (key in plain.stamps), (n, key)
        if key not in plain.stamps:
            seen.add(key, ts, owner=n % 7)
            plain.add(key, ts)
        assert len(seen) == len(plain.stamps)
    probes = [("fill", f"f{k}") for k in range(0, 30_000, 7)] + [("transfer", "f1")]
    assert [k in seen for k in probes] == [k in plain.stamps for k in probes]


def test_ids_that_share_the_first_half_of_their_digest_are_told_apart() -> None:
    seen = SeenIds()
    digests = np.array([[5, 1], [5, 2], [3, 9]], dtype=np.uint64)
    seen.restore(digests, np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.int64), 0)
    as_bytes = [row.astype("<u8").tobytes() for row in digests]
    assert [seen._find(d) for d in as_bytes] == [0, 1, 2]
    assert seen._find(np.array([5, 3], dtype="<u8").tobytes()) == -1


def test_digests_are_those_written_in_snapshots() -> None:
    """The digest is BLAKE2b-128 of kind, NUL, id (docs: SnapshotChunk.seen_digests)."""
    assert digest_of(("fill", "f-1")) == hashlib.blake2b(b"fill\x00f-1", digest_size=16).digest()
    assert digests_of([("fill", "f-1")]).astype("<u8").tobytes() == digest_of(("fill", "f-1"))


@pytest.mark.parametrize(
    ("window_ms", "max_ids"), [(None, None), (500, None), (None, 40), (700, 60)]
)
def test_a_restore_keeps_the_newest_ids_inside_the_window_and_the_cap(
    window_ms: int | None, max_ids: int | None
) -> None:
    """What a snapshot restore remembers, against the rule stated plainly: of the entries
    stamped at or after clock - window, the newest max_ids (oldest forgotten first)."""
    rng = random.Random(13)
    entries = [("fill", f"f{k}", rng.randrange(0, 1_000), rng.randrange(5)) for k in range(150)]
    clock = 1_000
    seen = SeenIds(window_ms=window_ms, max_ids=max_ids)
    seen.restore(
        digests_of([(kind, item) for kind, item, _, _ in entries]),
        np.array([e[2] for e in entries], dtype=np.int64),
        np.array([e[3] for e in entries], dtype=np.int64),
        clock,
    )

    by_age = sorted(entries, key=lambda entry: entry[2])  # stable: ties keep input order
    horizon = clock - window_ms if window_ms is not None else -1
    inside = [entry for entry in by_age if entry[2] >= horizon]
    kept = inside[max(0, len(inside) - max_ids) :] if max_ids is not None else inside
    assert len(seen) == len(kept)
    digests, stamps, owners = seen.log()
    assert (
        digests.astype("<u8").tobytes()
        == digests_of([(k, i) for k, i, _, _ in kept]).astype("<u8").tobytes()
    )
    assert stamps.tolist() == [e[2] for e in kept]
    assert owners.tolist() == [e[3] for e in kept]
    assert all((kind, item) in seen for kind, item, _, _ in kept)
    assert seen.clock_ms == clock
    assert owners[owners == 2].tolist() == [e[3] for e in kept if e[3] == 2]


def test_a_restore_counts_a_key_met_twice_once_at_its_newest_stamp() -> None:
    seen = SeenIds(window_ms=100)
    keys = [("fill", "a"), ("fill", "b"), ("fill", "a")]
    seen.restore(digests_of(keys), np.array([10, 20, 90], dtype=np.int64), np.arange(3), 150)
    assert len(seen) == 1  # b (20) is out of the window; a is kept at 90
    assert ("fill", "a") in seen
    assert seen.log()[1].tolist() == [90]


def test_engine_drops_every_duplicate_of_large_batches_once_as_a_set_would() -> None:
    """Batches larger than the index's merge step, with ids repeated inside a batch (far
    apart) and across batches: each id is applied once."""
    rng = random.Random(5)
    engine = Engine([BTC])
    applied: set[str] = set()
    duplicates = 0
    for batch in range(4):
        ids = [f"t{rng.randrange(0, 15_000)}" for _ in range(6_000)]
        items = [deposit(i, batch * 10_000 + k) for k, i in enumerate(ids)]
        for i in ids:
            duplicates += i in applied
            applied.add(i)
        engine.apply(items, [], now_ms=0)
        assert engine.ignored.get("duplicate", 0) == duplicates
    assert engine.account_risk("a").equity == pytest.approx(10.0 * len(applied))


def test_a_snapshot_carries_digests_and_one_written_with_ids_still_restores_them() -> None:
    """Snapshots carry the applied ids as digests; a snapshot from before the digests
    (``seen``: kind, id, stamp, owner) restores the same ids."""
    live = Engine([BTC], EngineConfig(idempotency_window_s=60.0))
    live.apply([deposit(f"t{k}", 1_000 * k) for k in range(5)], [], now_ms=0)
    book = live.book
    chunk = export_accounts(
        book, np.arange(book.accounts.size), topic="fills", partition=0, next_offset=5, ts=1
    )
    assert len(chunk.seen_digests) == 5 * 16
    assert chunk.seen == []
    older = msgspec.structs.replace(
        chunk,
        seen_digests=b"",
        seen_stamps=b"",
        seen_owners=b"",
        seen=[("transfer", f"t{k}", 1_000 * k, 0) for k in range(5)],
    )
    for restored_from in (chunk, older):
        fresh = Engine([BTC], EngineConfig(idempotency_window_s=60.0))
        assert load_snapshots(fresh.book, [restored_from]) == []
        fresh.full_recompute()
        fresh.apply([deposit("t3", 9_000), deposit("t9", 9_000)], [], now_ms=0)
        assert fresh.ignored == {"duplicate": 1}
        assert fresh.account_risk("a").equity == pytest.approx(60.0)


def test_a_snapshot_whose_id_columns_differ_in_length_is_refused_in_one_line() -> None:
    live = Engine([BTC])
    live.apply([deposit("t1", 0), deposit("t2", 0)], [], now_ms=0)
    chunk = export_accounts(
        live.book,
        np.arange(live.book.accounts.size),
        topic="fills",
        partition=3,
        next_offset=2,
        ts=1,
    )
    broken = msgspec.structs.replace(chunk, seen_stamps=chunk.seen_stamps[:8])
    with pytest.raises(InputError) as refused:
        load_snapshots(Engine([BTC]).book, [broken])
    assert str(refused.value) == (
        "snapshot chunk 0 of fills[3] has 2 ledger id digests but 1 stamps and 2 owners, so "
        "it is corrupt; write a null value for each of its keys (snapshot:fills:3:*) to "
        "the state topic and restart: the partition is then rebuilt from the ledger"
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_index_kernels_equal_their_references(seed: int) -> None:
    """Digests with shared first halves and repeated whole digests (an id applied again
    after it was forgotten), entries before the front: ``find`` and ``merge`` answer as
    their readable references do."""
    from monitor.book import _seen_kernels as k

    rng = np.random.default_rng(seed)
    n, base, front = 3_000, 100, 900
    digest = np.column_stack(
        [rng.integers(0, 40, n).astype(np.uint64), rng.integers(0, 2**63, n).astype(np.uint64)]
    )  # few first halves: long runs sharing one
    again = rng.choice(n, 200, replace=False)
    digest[again] = digest[rng.integers(0, n, 200)]  # whole digests met twice
    seq = np.arange(base, base + n, dtype=np.int64)
    halves = digest[seq - base]
    ordered = seq[np.lexsort((halves[:, 1], halves[:, 0]))]
    split = rng.random(n) < 0.3
    old, fresh = ordered[~split], ordered[split]  # each still sorted by digest
    merged = k.merge(old, fresh, digest, base)
    reference = k.merge_reference(old, fresh, digest, base)
    assert np.array_equal(digest[merged - base], digest[reference - base])  # same order
    assert sorted(merged.tolist()) == seq.tolist()
    wanted = np.concatenate([digest[rng.integers(0, n, 500)], digest[:50] + np.uint64(1)])
    found = k.find(merged, digest, base, front, wanted)
    assert found.tolist() == k.find_reference(merged, digest, base, front, wanted).tolist()
    assert (found >= front).sum() > 300
    assert (found == -1).sum() > 50
    # Plainly: the newest remembered entry with that digest.
    for w, f in zip(wanted.tolist(), found.tolist(), strict=True):
        live = [s for s in seq.tolist() if s >= front and digest[s - base].tolist() == w]
        assert f == (max(live) if live else -1)
