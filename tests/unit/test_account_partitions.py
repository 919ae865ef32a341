"""The account -> ledger partition map the service asks for ownership and snapshots."""

from __future__ import annotations

import pytest

from monitor.engine import Engine
from monitor.partitions import AccountPartitions
from monitor.schema import Instrument, Tier, TieredMargin, Transfer

pytestmark = pytest.mark.unit


def engine_with(accounts: list[str]) -> Engine:
    btc = Instrument(
        symbol="BTCUSDT",
        kind="linear",
        quote="USDT",
        base="BTC",
        margin=TieredMargin(tiers=(Tier(floor=0, cap=1e12, mmr=0.01, imr=0.02),)),
    )
    engine = Engine([btc])
    engine.apply(
        [
            Transfer(transfer_id=f"t-{a}", account=a, asset="USDT", amount=10, ts=0)
            for a in accounts
        ],
        [],
        0,
    )
    return engine


def test_an_account_noted_before_the_book_has_it_is_found_by_name() -> None:
    partitions = AccountPartitions()
    book = Engine([]).book
    partitions.note("new", 3)
    partitions.settle(book)  # the book does not hold it yet: kept by name
    assert partitions.partition(book, "new") == 3
    assert partitions.partition(book, "never-seen") is None


def test_settled_accounts_are_listed_by_partition_in_dense_id_order() -> None:
    partitions = AccountPartitions()
    for name, partition in (("a", 0), ("b", 2), ("c", 0), ("d", 1)):
        partitions.note(name, partition)
    book = engine_with(["d", "c", "b", "a"]).book  # dense ids: d=0, c=1, b=2, a=3
    partitions.settle(book)
    assert partitions.accounts_of(book, 0).tolist() == [1, 3]
    assert partitions.accounts_of(book, 2).tolist() == [2]
    assert partitions.accounts_of(book, 5).tolist() == []
    assert [partitions.partition(book, a) for a in "abcd"] == [0, 2, 0, 1]


def test_a_later_note_wins_over_a_settled_partition() -> None:
    partitions = AccountPartitions()
    book = engine_with(["a"]).book
    partitions.note_many(["a"], 0)
    partitions.settle(book)
    partitions.note("a", 4)
    assert partitions.partition(book, "a") == 4
    partitions.settle(book)
    assert partitions.accounts_of(book, 4).tolist() == [0]
    assert partitions.accounts_of(book, 0).tolist() == []
