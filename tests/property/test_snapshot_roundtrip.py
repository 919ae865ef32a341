"""A book restored from snapshots judges exactly like the book it was taken from.

Random histories (the incremental property test's): after some cycles the accounts are
snapshotted in two "partitions" (the second in chunks so small that each account spans
several), loaded into a fresh engine, their states restored from the changelog records;
the book must be the same row for row and id for id, the figures must agree, and the rest
of the history must then give identical events on both.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.book import export_accounts, export_partition, load_snapshots
from monitor.engine import Engine, restore_states, unit_record
from monitor.schema import MarginEvent, PriceTick, Transfer
from tests.property.test_engine_incremental import (
    ACCOUNTS,
    BASE_PRICE,
    CONFIG,
    INSTRUMENTS,
    STARTING_USDT,
    cycles,
)
from tests.property.test_engine_incremental import _materialise as materialise
from tests.unit.test_snapshot_span import account_view

_encode = msgspec.json.Encoder().encode


def _opened() -> Engine:
    engine = Engine(INSTRUMENTS, CONFIG)
    deposits = [
        Transfer(transfer_id=f"d{k}", account=account, asset="USDT", amount=amount, ts=0)
        for k, (account, amount) in enumerate(zip(ACCOUNTS, STARTING_USDT, strict=True))
    ]
    prices = [PriceTick(symbol=s, mark_price=p, ts=0) for s, p in BASE_PRICE.items()]
    engine.apply(deposits, prices, 0)
    return engine


def _restored(live: Engine, marks: list[PriceTick]) -> Engine:
    book = live.book
    n = book.accounts.size
    partitions = [np.arange(n)[np.arange(n) % 2 == p] for p in (0, 1)]
    chunks = [export_accounts(book, partitions[0], topic="fills", partition=0, next_offset=7, ts=1)]
    # Room for an account and a position row or a few ledger ids a chunk: accounts span.
    empty = export_accounts(
        book, partitions[0][:0], topic="fills", partition=1, next_offset=7, ts=1
    )
    chunks += export_partition(
        book,
        partitions[1],
        topic="fills",
        partition=1,
        next_offset=7,
        ts=1,
        max_bytes=len(_encode(empty)) + 200,
        encode=_encode,
    )
    fresh = Engine(INSTRUMENTS, CONFIG)
    fresh.apply([], marks, 0)
    assert load_snapshots(fresh.book, chunks) == []
    fresh.full_recompute()
    restore_states(fresh, {a: unit_record(live, a, 1) for a in book.account_names})
    return fresh


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cycles, st.integers(min_value=0, max_value=12))
def test_a_book_loaded_from_snapshots_continues_exactly_like_the_original(
    raw: list[tuple[list[dict[str, Any]], list[tuple[str, float]]]], cut: int
) -> None:
    batches = materialise(raw)
    cut = min(cut, len(batches))
    live = _opened()
    marks = {s: PriceTick(symbol=s, mark_price=p, ts=0) for s, p in BASE_PRICE.items()}
    for cycle, (ledger, prices) in enumerate(batches[:cut], start=1):
        live.apply(ledger, prices, 1_000 * cycle)
        marks.update({t.symbol: t for t in prices})
    restored = _restored(live, list(marks.values()))
    assert restored.verify() == []
    for account in live.book.account_names:
        assert account_view(restored.book, account) == account_view(live.book, account)
    for account in live.book.account_names:
        # Sums may add the same terms in another order: equal to the last few bits.
        got = msgspec.to_builtins(restored.account_risk(account))
        assert _close(got, msgspec.to_builtins(live.account_risk(account))), account
    assert len(restored.book.applied_ids) == len(live.book.applied_ids)
    events: tuple[list[MarginEvent], list[MarginEvent]] = ([], [])
    for cycle, (ledger, prices) in enumerate(batches[cut:], start=cut + 1):
        events[0].extend(live.apply(ledger, prices, 1_000 * cycle))
        events[1].extend(restored.apply(ledger, prices, 1_000 * cycle))
    # Kafka orders events per account (key); across accounts a restored book may judge
    # units in another order (unit ids are renumbered), so compare account by account.
    mine, theirs = _by_account(events[1]), _by_account(events[0])
    assert {a: [_identity(e) for e in es] for a, es in mine.items()} == {
        a: [_identity(e) for e in es] for a, es in theirs.items()
    }
    for account, got in mine.items():
        for a, b in zip(got, theirs[account], strict=True):
            assert _close(msgspec.to_builtins(a), msgspec.to_builtins(b))


def _by_account(events: list[MarginEvent]) -> dict[str, list[MarginEvent]]:
    grouped: dict[str, list[MarginEvent]] = {}
    for event in events:
        grouped.setdefault(event.account, []).append(event)
    return grouped


def _close(a: object, b: object) -> bool:
    """Equal, floats to 1e-9 relative (or absolute near zero), through lists and dicts."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _identity(event: MarginEvent) -> tuple[str, str, str, str | None, int, int]:
    return (
        event.event_id,
        event.type,
        event.account,
        event.symbol,
        event.sequence,
        event.trigger_ts,
    )
