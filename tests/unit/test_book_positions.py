"""Position arithmetic as USDⓈ-M venues do it, fees, idempotent fills, the holder index."""

from __future__ import annotations

import pytest

from monitor.book import trade
from monitor.engine import Engine
from monitor.schema import Fill, Instrument, PriceTick, Tier, TieredMargin, Transfer

pytestmark = pytest.mark.unit

BTC = Instrument(
    symbol="BTCUSDT",
    kind="linear",
    quote="USDT",
    base="BTC",
    margin=TieredMargin(tiers=(Tier(floor=0, cap=1e12, mmr=0.005, imr=0.01),)),
)
ETH = Instrument(
    symbol="ETHUSDT",
    kind="linear",
    quote="USDT",
    base="ETH",
    contract_size=0.1,
    margin=TieredMargin(tiers=(Tier(floor=0, cap=1e12, mmr=0.01, imr=0.02),)),
)


def fill(fill_id: str, side: str, qty: float, price: float, fee: float = 0.0, **kw: object) -> Fill:
    return Fill(
        fill_id=fill_id,
        account=str(kw.get("account", "a")),
        symbol=str(kw.get("symbol", "BTCUSDT")),
        side=side,  # type: ignore[arg-type]
        qty=qty,
        price=price,
        ts=int(str(kw.get("ts", 1))),
        fee=fee,
    )


@pytest.fixture
def engine() -> Engine:
    e = Engine([BTC, ETH])
    e.apply([Transfer(transfer_id="t0", account="a", asset="USDT", amount=10_000.0, ts=0)], [], 0)
    return e


def position(engine: Engine, symbol: str = "BTCUSDT") -> tuple[float, float]:
    book = engine.book
    row = book.positions.rows[(book.account_index["a"], book.instrument_index[symbol])]
    return float(book.positions.qty[row]), float(book.positions.entry[row])


def wallet(engine: Engine) -> float:
    return float(engine.book.accounts.balance[engine.book.account_index["a"], 0])


def test_increasing_a_position_moves_the_entry_to_the_size_weighted_average() -> None:
    assert trade(1.0, 100.0, 3.0, 200.0, 1.0) == (4.0, 175.0, 0.0)


def test_reducing_a_position_realises_pnl_and_keeps_the_entry() -> None:
    assert trade(4.0, 100.0, -1.0, 130.0, 1.0) == (3.0, 100.0, 30.0)


def test_reducing_a_short_realises_pnl_with_the_short_sign() -> None:
    assert trade(-2.0, 100.0, 1.0, 90.0, 10.0) == (-1.0, 100.0, 100.0)


def test_flipping_through_zero_opens_the_remainder_at_the_fill_price() -> None:
    assert trade(2.0, 100.0, -5.0, 110.0, 1.0) == (-3.0, 110.0, 20.0)


def test_closing_exactly_leaves_a_flat_position_with_no_entry() -> None:
    assert trade(2.0, 100.0, -2.0, 90.0, 1.0) == (0.0, 0.0, -20.0)


def test_float_dust_from_decimal_lots_counts_as_flat() -> None:
    qty, _, _ = trade(0.1 + 0.2, 100.0, -0.3, 100.0, 1.0)
    assert qty == 0.0


def test_fills_update_position_and_wallet_through_the_engine(engine: Engine) -> None:
    engine.apply([fill("f1", "buy", 2.0, 100.0), fill("f2", "buy", 2.0, 200.0)], [], 1)
    assert position(engine) == (4.0, 150.0)
    assert wallet(engine) == pytest.approx(10_000.0)
    engine.apply([fill("f3", "sell", 1.0, 250.0)], [], 2)
    assert position(engine) == (3.0, 150.0)
    assert wallet(engine) == pytest.approx(10_100.0)  # the realised PnL, in the wallet


def test_realised_pnl_uses_the_contract_size(engine: Engine) -> None:
    engine.apply(
        [
            fill("f1", "sell", 10.0, 2000.0, symbol="ETHUSDT"),
            fill("f2", "buy", 10.0, 1900.0, symbol="ETHUSDT"),
        ],
        [],
        1,
    )
    assert position(engine, "ETHUSDT") == (0.0, 0.0)
    assert wallet(engine) == pytest.approx(10_100.0)


def test_fees_reduce_collateral_and_rebates_add_to_it(engine: Engine) -> None:
    engine.apply(
        [fill("f1", "buy", 1.0, 100.0, fee=1.5), fill("f2", "buy", 1.0, 100.0, fee=-0.5)], [], 1
    )
    assert wallet(engine) == pytest.approx(9_999.0)


def test_a_fill_seen_twice_is_applied_once(engine: Engine) -> None:
    engine.apply([fill("f1", "buy", 1.0, 100.0, fee=1.0)], [], 1)
    engine.apply([fill("f1", "buy", 1.0, 100.0, fee=1.0)], [], 2)
    engine.apply([fill("f1", "buy", 1.0, 100.0, fee=1.0), fill("f1", "buy", 1.0, 100.0)], [], 3)
    assert position(engine)[0] == 1.0
    assert wallet(engine) == pytest.approx(9_999.0)
    assert engine.ignored["duplicate"] == 3


def test_a_price_tick_revalues_only_the_holders_of_its_instrument(engine: Engine) -> None:
    engine.apply(
        [
            fill("f1", "buy", 1.0, 100.0),
            fill("f2", "buy", 1.0, 100.0, account="b"),
            fill("f3", "buy", 1.0, 2000.0, account="c", symbol="ETHUSDT"),
        ],
        [],
        1,
    )
    book = engine.book
    rows = book.positions.holders_of(book.instrument_index["BTCUSDT"])
    assert sorted(book.account_names[a] for a in book.positions.account[rows]) == ["a", "b"]
    engine.apply([], [PriceTick(symbol="BTCUSDT", mark_price=120.0, ts=2)], 2)
    assert engine.account_risk("b").equity == pytest.approx(20.0)
    assert engine.account_risk("c").positions[0].mark_price == 2000.0
    assert engine.verify() == []


def test_closing_a_position_removes_it_from_the_holders(engine: Engine) -> None:
    engine.apply([fill("f1", "buy", 1.0, 100.0), fill("f2", "sell", 1.0, 110.0)], [], 1)
    assert engine.book.positions.holders_of(0).size == 0
    assert engine.position_count == 0
    assert engine.verify() == []


def test_a_position_can_reopen_after_closing(engine: Engine) -> None:
    engine.apply(
        [
            fill("f1", "buy", 1.0, 100.0),
            fill("f2", "sell", 1.0, 110.0),
            fill("f3", "sell", 2.0, 120.0),
        ],
        [],
        1,
    )
    assert position(engine) == (-2.0, 120.0)
    assert wallet(engine) == pytest.approx(10_010.0)  # f2 closed the long 10 up
    assert engine.position_count == 1
    assert engine.verify() == []


def test_the_first_fill_price_marks_an_instrument_until_its_first_tick(engine: Engine) -> None:
    engine.apply([fill("f1", "buy", 1.0, 100.0), fill("f2", "buy", 1.0, 300.0)], [], 1)
    assert engine.mark_price("BTCUSDT") == 100.0
    assert engine.account_risk("a").positions[0].unrealized_pnl == pytest.approx(-200.0)
    engine.apply([], [PriceTick(symbol="BTCUSDT", mark_price=250.0, ts=2)], 2)
    assert engine.mark_price("BTCUSDT") == 250.0
