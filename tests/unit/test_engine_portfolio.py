"""The monitor's engine with accounts on portfolio margin."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from monitor.config import load_settings
from monitor.engine import Engine, EngineConfig
from monitor.errors import ConfigError
from monitor.schema import Fill, Instrument, MarginSettings, PriceTick, Transfer

REQUEST = json.loads(
    (Path(__file__).resolve().parents[1] / "data" / "portfolio_margin_request.json").read_text()
)
INSTRUMENTS = msgspec.convert(REQUEST["instruments"], tuple[Instrument, ...])
NOW = 1_796_198_400_000  # 2026-12-02T08:00:00Z
CALL, PUT = "BTC-C-100000", "BTC-P-100000"


def covered_call(engine: Engine, account: str, ts: int, collateral: float = 20_000.0) -> None:
    """Long 1 BTC-USD future, short 1 call at 100,000 (sold at 5,000, marked 5,520)."""
    engine.apply(
        [
            Transfer(
                transfer_id=f"{account}-t", account=account, asset="USDC", amount=collateral, ts=ts
            ),
            Fill(
                fill_id=f"{account}-f",
                account=account,
                symbol="BTC-USD",
                side="buy",
                qty=1.0,
                price=100_000.0,
                ts=ts,
            ),
            Fill(
                fill_id=f"{account}-c",
                account=account,
                symbol=CALL,
                side="sell",
                qty=1.0,
                price=5_000.0,
                ts=ts,
            ),
        ],
        [],
        ts,
    )


@pytest.fixture
def engine() -> Engine:
    engine = Engine(INSTRUMENTS, EngineConfig(valuation_asset="USDC"))
    ticks = [
        PriceTick(symbol="BTC-USD", mark_price=100_000.0, ts=NOW),
        PriceTick(symbol=CALL, mark_iv=0.5, ts=NOW),
        PriceTick(symbol=PUT, mark_iv=0.5, ts=NOW),
    ]
    engine.apply([], ticks, NOW)
    return engine


def portfolio(account: str, ts: int, mode: str = "portfolio") -> MarginSettings:
    return MarginSettings(settings_id=f"{account}-{mode}-{ts}", account=account, mode=mode, ts=ts)  # type: ignore[arg-type]


def test_switching_to_portfolio_margin_is_judged_at_once(engine: Engine) -> None:
    # Equity 16,000: below the standard MM (18,020), above the portfolio MM (14,465).
    covered_call(engine, "a", NOW, collateral=16_520.0)
    before = engine.account_risk("a")
    assert before.state == "liquidation"
    events = engine.apply([portfolio("a", NOW + 1)], [], NOW + 1)
    assert [e.type for e in events] == ["liquidation_cleared"]
    (event,) = events
    assert event.trigger == "ledger"
    (group,) = event.portfolio
    assert group.underlying == "BTC-USD"
    assert group.model == "pm_risk_matrix"
    assert event.maintenance_margin == pytest.approx(group.maintenance_margin)
    assert event.maintenance_margin < before.maintenance_margin
    back = engine.apply([portfolio("a", NOW + 2, "cross")], [], NOW + 2)
    assert [e.type for e in back] == ["liquidation"]
    assert back[0].portfolio == ()
    assert engine.verify() == []


def test_a_crash_liquidates_the_naked_portfolio_account_not_the_hedged_one(engine: Engine) -> None:
    covered_call(engine, "hedged", NOW)
    engine.apply(
        [
            Transfer(transfer_id="n-t", account="naked", asset="USDC", amount=30_000, ts=NOW),
            Fill(
                fill_id="n-f",
                account="naked",
                symbol="BTC-USD",
                side="buy",
                qty=1.0,
                price=100_000.0,
                ts=NOW,
            ),
            portfolio("hedged", NOW),
            portfolio("naked", NOW),
        ],
        [],
        NOW,
    )
    hedged_put = [
        Fill(
            fill_id="h-p", account="hedged", symbol=PUT, side="buy", qty=1.0, price=5_000.0, ts=NOW
        ),
        Transfer(transfer_id="h-t2", account="hedged", asset="USDC", amount=10_000, ts=NOW),
    ]
    engine.apply(hedged_put, [], NOW)
    assert engine.account_risk("hedged").state == "healthy"
    assert engine.account_risk("naked").state == "healthy"
    events = engine.apply(
        [], [PriceTick(symbol="BTC-USD", mark_price=75_000.0, ts=NOW + 60_000)], NOW + 60_000
    )
    by_account = {e.account: e for e in events}
    assert "hedged" not in by_account
    assert by_account["naked"].type in {"liquidation", "bankruptcy"}
    assert by_account["naked"].trigger == "price"
    (group,) = by_account["naked"].portfolio
    assert group.worst_scenario.price_move == -0.16
    assert engine.verify() == []


def test_a_volatility_tick_at_an_unchanged_mark_reprices_the_group(engine: Engine) -> None:
    covered_call(engine, "a", NOW)
    engine.apply([portfolio("a", NOW)], [], NOW)
    before = engine.account_risk("a").maintenance_margin
    call_mark = engine.mark_price(CALL)
    assert call_mark is not None
    # The call's price unchanged a day later: its volatility is re-implied, higher.
    later = NOW + 86_400_000
    engine.apply([], [PriceTick(symbol=CALL, mark_price=call_mark, ts=later)], later)
    assert engine.verify() == []
    assert engine.account_risk("a").maintenance_margin != before


def test_portfolio_parameters_come_from_the_environment_as_json() -> None:
    settings = load_settings(
        environ={
            "LIQMON_ENGINE__VALUATION_ASSET": "USDC",
            "LIQMON_ENGINE__PORTFOLIO_MARGIN": (
                '{"BTC-USD": {"model": "pm_hybrid", "im_factor": 1.5}}'
            ),
        }
    )
    engine = Engine(INSTRUMENTS, settings.engine)
    group = engine.portfolio.layout.index["BTC-USD"]
    assert engine.portfolio.layout.params[group].model == "pm_hybrid"
    assert engine.portfolio.layout.params[group].im_factor == 1.5


@pytest.mark.parametrize(
    ("portfolio_margin", "message"),
    [
        ({"ETH-USD": {}}, "engine.portfolio_margin.ETH-USD: no such underlying group"),
        ({"BTC-USD": {"price_range": 1.5}}, "engine.portfolio_margin.BTC-USD.price_range: 1.5"),
    ],
)
def test_bad_portfolio_parameters_stop_the_engine_with_one_line(
    portfolio_margin: dict[str, dict[str, float]], message: str
) -> None:
    config = msgspec.convert(
        {"valuation_asset": "USDC", "portfolio_margin": portfolio_margin}, EngineConfig
    )
    with pytest.raises(ConfigError) as raised:
        Engine(INSTRUMENTS, config)
    assert str(raised.value).startswith(message)


def test_a_portfolio_liquidation_reduces_every_position_to_bring_im_down_to_equity(
    engine: Engine,
) -> None:
    engine.apply(
        [
            portfolio("p", NOW),
            Transfer(transfer_id="p-t", account="p", asset="USDC", amount=50_000, ts=NOW),
            Fill(
                fill_id="p-f",
                account="p",
                symbol="BTC-USD",
                side="buy",
                qty=2.0,
                price=100_000.0,
                ts=NOW,
            ),
        ],
        [],
        NOW,
    )
    crash = NOW + 60_000
    events = engine.apply([], [PriceTick(symbol="BTC-USD", mark_price=88_000.0, ts=crash)], crash)
    (event,) = [e for e in events if e.type == "liquidation"]
    (reduction,) = event.reductions
    kept = 2.0 - reduction.qty
    assert 0.0 < kept < 2.0
    # Reduced at the mark (equity unchanged), the account's portfolio IM equals its equity.
    after = engine.apply(
        [
            Fill(
                fill_id="p-r",
                account="p",
                symbol="BTC-USD",
                side="sell",
                qty=reduction.qty,
                price=88_000.0,
                ts=crash + 1,
            )
        ],
        [],
        crash + 1,
    )
    risk = engine.account_risk("p")
    assert risk.initial_margin == pytest.approx(risk.equity, rel=1e-9)
    assert [e.type for e in after] == ["liquidation_cleared"]
