"""The bulk loader builds the same book as loading positions one by one."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.book import load_cross_accounts
from monitor.engine import Engine
from monitor.schema import (
    Instrument,
    PriceTick,
    RateCurve,
    SizeScaledMargin,
    Tier,
    TieredMargin,
)

pytestmark = pytest.mark.unit

INSTRUMENTS = [
    Instrument(
        symbol=f"S{k}",
        kind="linear",
        quote="USDT",
        base=f"B{k}",
        margin=(
            TieredMargin(
                tiers=(
                    Tier(floor=0, cap=5_000, mmr=0.01, imr=0.02),
                    Tier(floor=5_000, cap=1e12, mmr=0.02, imr=0.05),
                )
            )
            if k % 2
            else SizeScaledMargin(im=RateCurve(base=0.02, slope=0.001), mm=RateCurve(base=0.01))
        ),
    )
    for k in range(5)
]


def positions() -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    names = [f"acct{i}" for i in range(40)]
    account = np.repeat(np.arange(40), 3)
    instrument = ((np.arange(40)[:, None] + np.array([0, 1, 3])) % 5).ravel().astype(np.intp)
    qty = rng.uniform(-20, 20, 120)
    entry = rng.uniform(50, 150, 120)
    balances = rng.uniform(0, 2_000, (40, 1))
    return names, balances, account, instrument, qty, entry


def test_bulk_loading_equals_loading_one_position_at_a_time() -> None:
    names, balances, account, instrument, qty, entry = positions()
    ticks = [
        PriceTick(symbol=i.symbol, mark_price=100.0 + k, ts=0) for k, i in enumerate(INSTRUMENTS)
    ]

    bulk = Engine(INSTRUMENTS)
    bulk.apply([], ticks, 0)
    load_cross_accounts(bulk.book, names, balances, account, instrument, qty, entry)
    bulk.full_recompute()

    single = Engine(INSTRUMENTS)
    single.apply([], ticks, 0)
    for ix, name in enumerate(names):
        single.book.set_balance(single.book.account(name), 0, float(balances[ix, 0]))
    for a, i, q, e in zip(
        account.tolist(), instrument.tolist(), qty.tolist(), entry.tolist(), strict=True
    ):
        single.book.load_position(a, i, q, e)
    single.full_recompute()

    assert bulk.verify() == []
    assert single.verify() == []
    assert bulk.state_counts() == single.state_counts()
    for name in names:
        assert bulk.account_risk(name) == single.account_risk(name)


def test_a_bulk_loaded_book_keeps_working_incrementally() -> None:
    names, balances, account, instrument, qty, entry = positions()
    engine = Engine(INSTRUMENTS)
    load_cross_accounts(engine.book, names, balances, account, instrument, qty, entry)
    engine.full_recompute()
    engine.apply([], [PriceTick(symbol="S1", mark_price=90.0, ts=1)], 1)
    assert engine.verify() == []


def test_bulk_loading_rejects_a_pair_given_twice() -> None:
    engine = Engine(INSTRUMENTS)
    with pytest.raises(ValueError, match="more than once"):
        load_cross_accounts(
            engine.book,
            ["a"],
            np.zeros((1, 1)),
            np.array([0, 0]),
            np.array([1, 1]),
            np.array([1.0, 2.0]),
            np.array([100.0, 100.0]),
        )
