"""Live exposure: bad debt, liquidation exposure and open interest, worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.engine import Engine, _views, exposure
from monitor.schema import Fill, Instrument, PriceTick, Tier, TieredMargin, Transfer
from monitor.states import BANKRUPT, LIQUIDATION

pytestmark = pytest.mark.unit


def linear(symbol: str, base: str) -> Instrument:
    return Instrument(
        symbol=symbol,
        kind="linear",
        quote="USDT",
        base=base,
        margin=TieredMargin(tiers=(Tier(floor=0, cap=1e12, mmr=0.01, imr=0.02),)),
    )


def book() -> Engine:
    engine = Engine([linear("BTCUSDT", "BTC"), linear("ETHUSDT", "ETH")])
    engine.apply(
        [
            # bust: 1 BTC long at 100 with 10 USDT -> at 80: equity 10 - 20 = -10, bankrupt.
            Transfer(transfer_id="t1", account="bust", asset="USDT", amount=10, ts=0),
            Fill(
                fill_id="f1", account="bust", symbol="BTCUSDT", side="buy", qty=1, price=100, ts=0
            ),
            # deep: 10 ETH long at 10 with 21 USDT -> at 8: equity 21 - 20 = 1, MM 0.8:
            # healthy... at 7.95: equity 0.5, MM 0.795, in liquidation.
            Transfer(transfer_id="t2", account="deep", asset="USDT", amount=21, ts=0),
            Fill(
                fill_id="f2", account="deep", symbol="ETHUSDT", side="buy", qty=10, price=10, ts=0
            ),
            # fine: short 3 BTC and long 2 ETH, well funded.
            Transfer(transfer_id="t3", account="fine", asset="USDT", amount=1e6, ts=0),
            Fill(
                fill_id="f3", account="fine", symbol="BTCUSDT", side="sell", qty=3, price=100, ts=0
            ),
            Fill(fill_id="f4", account="fine", symbol="ETHUSDT", side="buy", qty=2, price=10, ts=0),
        ],
        [
            PriceTick(symbol="BTCUSDT", mark_price=100, ts=0),
            PriceTick(symbol="ETHUSDT", mark_price=10, ts=0),
        ],
        0,
    )
    engine.apply(
        [],
        [
            PriceTick(symbol="BTCUSDT", mark_price=80, ts=1),
            PriceTick(symbol="ETHUSDT", mark_price=7.95, ts=1),
        ],
        1,
    )
    return engine


def test_bad_debt_is_what_bankrupt_accounts_owe_beyond_their_collateral() -> None:
    found = exposure(book())
    assert (found.bankrupt_units, found.bad_debt) == (1, pytest.approx(10.0))
    assert found.bad_debt_by_underlying == {"BTC": pytest.approx(10.0), "ETH": 0.0}
    assert found.bad_debt_by_settle_asset == {"USDT": pytest.approx(10.0)}


def test_liquidation_exposure_weights_notional_by_depth_towards_bankruptcy() -> None:
    found = exposure(book())
    # deep: notional 10 x 7.95 = 79.5, MM 0.795, equity 21 - 20.5 = 0.5:
    # depth (0.795 - 0.5) / 0.795.
    depth = (0.795 - 0.5) / 0.795
    assert found.liquidation_units == 1
    assert found.liquidation_exposure == pytest.approx(79.5 * depth)
    assert found.liquidation_exposure_by_underlying["ETH"] == pytest.approx(79.5 * depth)
    assert found.liquidation_exposure_by_underlying["BTC"] == 0.0


def test_open_interest_is_the_long_side_per_instrument() -> None:
    assert exposure(book()).open_interest == {"BTCUSDT": 1.0, "ETHUSDT": 12.0}


def crowd(seed: int) -> Engine:
    """Two hundred accounts with random positions, then a fall that leaves some bankrupt,
    some in liquidation and most healthy; some rows flat."""
    rng = np.random.default_rng(seed)
    engine = Engine([linear("BTCUSDT", "BTC"), linear("ETHUSDT", "ETH")])
    ledger: list[Transfer | Fill] = []
    for a in range(200):
        name = f"a{a}"
        ledger.append(
            Transfer(
                transfer_id=f"t{a}",
                account=name,
                asset="USDT",
                amount=float(rng.uniform(5, 60)),
                ts=0,
            )
        )
        for k, symbol in enumerate(("BTCUSDT", "ETHUSDT")):
            qty = float(rng.integers(-3, 4))
            sides = ("buy", "sell") if qty > 0 else ("sell", "buy")
            trades = (("f", sides[0]), ("g", sides[1]))  # then, now and then, closed again
            for prefix, side in trades[: 0 if not qty else 2 if rng.random() < 0.1 else 1]:
                ledger.append(
                    Fill(
                        fill_id=f"{prefix}{a}-{k}",
                        account=name,
                        symbol=symbol,
                        side=side,
                        qty=abs(qty),
                        price=100.0,
                        ts=0,
                    )
                )
    start = [PriceTick(symbol=s, mark_price=100.0, ts=0) for s in ("BTCUSDT", "ETHUSDT")]
    engine.apply(ledger, start, 0)
    engine.apply(
        [],
        [
            PriceTick(symbol="BTCUSDT", mark_price=92.0, ts=1),
            PriceTick(symbol="ETHUSDT", mark_price=107.0, ts=1),
        ],
        1,
    )
    return engine


def plain_exposure(engine: Engine) -> tuple[float, float, dict[str, float], dict[str, float]]:
    """Bad debt and liquidation exposure unit by unit, row by row (the module's rules)."""
    book = engine.book
    units, pos = book.units, book.positions
    bad, exposed = 0.0, 0.0
    debt_by: dict[str, float] = {"BTC": 0.0, "ETH": 0.0}
    exposed_by: dict[str, float] = {"BTC": 0.0, "ETH": 0.0}
    for u in range(units.size):
        state = int(units.state[u])
        if state not in (BANKRUPT, LIQUIDATION):
            continue
        equity = float(units.collateral[u] + units.upnl[u])
        mm = float(units.maintenance[u])
        short = max(0.0, -equity) if state == BANKRUPT else 0.0
        bad += short
        depth = min(max((mm - equity) / mm, 0.0), 1.0) if mm > 0 else 1.0
        for r in range(pos.size):
            if int(pos.unit[r]) != u:
                continue
            base = book.instruments[int(pos.instrument[r])].base
            share = float(pos.maintenance[r]) / mm if mm > 0 else 0.0
            debt_by[base] += short * share
            if state == LIQUIDATION:
                notional = abs(float(pos.qty[r])) * float(book.mark[int(pos.instrument[r])])
                exposed += notional * depth
                exposed_by[base] += notional * depth
    return bad, exposed, debt_by, exposed_by


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_exposure_of_a_crowd_equals_a_unit_by_unit_count(seed: int) -> None:
    engine = crowd(seed)
    states = engine.book.units.state[: engine.book.units.size]
    assert (states == BANKRUPT).sum() >= 3  # the test means something
    assert (states == LIQUIDATION).sum() >= 3
    found = exposure(engine)
    bad, exposed, debt_by, exposed_by = plain_exposure(engine)
    assert found.bad_debt == pytest.approx(bad)
    assert found.liquidation_exposure == pytest.approx(exposed)
    assert found.bad_debt_by_underlying == pytest.approx(debt_by)
    assert found.liquidation_exposure_by_underlying == pytest.approx(exposed_by)


def test_open_positions_are_counted_a_block_of_rows_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = crowd(4)
    pos = engine.book.positions
    plain = sum(1 for r in range(pos.size) if pos.qty[r] != 0.0)
    assert plain < pos.size  # flat rows too
    monkeypatch.setattr(_views, "_ROW_BLOCK", 7)
    assert engine.position_counts() == {"linear": plain, "inverse": 0, "option": 0}
