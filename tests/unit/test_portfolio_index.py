"""A group's holder index is kept across ticks and fills that only resize positions, and
dropped when the ledger opens a position, moves one to an isolated unit or switches mode;
either way the figures equal a from-scratch recompute."""

from __future__ import annotations

import pytest

from monitor.engine import Engine
from monitor.schema import Fill, MarginSettings, PriceTick
from tests.unit.test_engine_portfolio import CALL, NOW, PUT, covered_call, engine, portfolio

pytestmark = pytest.mark.unit
__all__ = ["engine"]  # the fixture, shared with test_engine_portfolio


def fill(fill_id: str, symbol: str, side: str, qty: float, ts: int, account: str = "a") -> Fill:
    return Fill(
        fill_id=fill_id,
        account=account,
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        qty=qty,
        price=5_000.0 if symbol != "BTC-USD" else 100_000.0,
        ts=ts,
    )


def tick(engine: Engine, price: float, ts: int) -> None:
    engine.apply([], [PriceTick(symbol="BTC-USD", mark_price=price, ts=ts)], ts)


@pytest.fixture
def ticked(engine: Engine) -> Engine:
    """Accounts a and b on portfolio margin, the BTC-USD group's index built by a tick."""
    covered_call(engine, "a", NOW)
    covered_call(engine, "b", NOW)
    engine.apply([portfolio("a", NOW), portfolio("b", NOW)], [], NOW)
    tick(engine, 99_000.0, NOW + 1)
    return engine


def index_of(engine: Engine) -> object:
    portfolio_ = engine.portfolio
    return portfolio_._holders.get(portfolio_.layout.index["BTC-USD"])


def test_ticks_and_a_resizing_fill_keep_the_index(ticked: Engine) -> None:
    kept = index_of(ticked)
    assert kept is not None
    tick(ticked, 98_000.0, NOW + 2)
    ticked.apply([fill("a-more", CALL, "sell", 0.5, NOW + 3)], [], NOW + 3)
    tick(ticked, 97_000.0, NOW + 4)
    assert index_of(ticked) is kept
    assert ticked.verify() == []


def test_closing_a_position_keeps_the_index_and_counts_nothing_for_it(ticked: Engine) -> None:
    kept = index_of(ticked)
    ticked.apply([fill("a-close", CALL, "buy", 1.0, NOW + 2)], [], NOW + 2)
    tick(ticked, 90_000.0, NOW + 3)
    assert index_of(ticked) is kept
    assert ticked.verify() == []


@pytest.mark.parametrize(
    "change",
    [
        fill("a-put", PUT, "buy", 1.0, NOW + 2),
        fill("c-new", CALL, "sell", 1.0, NOW + 2, account="c"),
        MarginSettings(settings_id="a-cross", account="a", mode="cross", ts=NOW + 2),
    ],
    ids=["new position", "new account", "mode switch"],
)
def test_a_structural_change_rebuilds_the_index(ticked: Engine, change: object) -> None:
    kept = index_of(ticked)
    if isinstance(change, Fill) and change.account == "c":
        ticked.apply([portfolio("c", NOW + 1)], [], NOW + 1)
    ticked.apply([change], [], NOW + 2)  # type: ignore[list-item]
    assert index_of(ticked) is not kept
    tick(ticked, 90_000.0, NOW + 3)
    assert ticked.verify() == []


def test_switching_to_isolated_margin_and_filling_rebuilds_the_index(ticked: Engine) -> None:
    kept = index_of(ticked)
    ticked.apply(
        [
            MarginSettings(settings_id="b-iso", account="b", mode="isolated", ts=NOW + 2),
            fill("b-iso-fill", "BTC-USD", "buy", 0.5, NOW + 2, account="b"),
        ],
        [],
        NOW + 2,
    )
    assert index_of(ticked) is not kept
    tick(ticked, 90_000.0, NOW + 3)
    assert ticked.verify() == []


def test_an_events_group_figures_equal_a_fresh_numpy_recompute(ticked: Engine) -> None:
    ticked.apply([fill("a-naked", CALL, "sell", 3.0, NOW + 2)], [], NOW + 2)
    events = ticked.apply(
        [], [PriceTick(symbol="BTC-USD", mark_price=130_000.0, ts=NOW + 3)], NOW + 3
    )
    assert events
    for event in events:
        fresh = ticked.portfolio_groups(ticked.book.account_index[event.account], True)
        assert len(event.portfolio) == len(fresh) == 1
        for stored, recomputed in zip(event.portfolio, fresh, strict=True):
            assert stored.worst_scenario == recomputed.worst_scenario
            for name in ("loss", "futures_contingency", "option_contingency"):
                assert getattr(stored, name) == pytest.approx(getattr(recomputed, name), 1e-9)
            assert stored.maintenance_margin == pytest.approx(recomputed.maintenance_margin, 1e-9)
            assert stored.initial_margin == pytest.approx(recomputed.initial_margin, 1e-9)
