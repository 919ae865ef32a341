"""The simulated option market: a chain, its smile, option books, coin-margined accounts on
an inverse perpetual, and a crash that liquidates short-option and coin-margined accounts
(run through the engine, no Kafka)."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

import msgspec
import numpy as np
import pytest

from monitor.coin_market import inverse_perpetual
from monitor.engine import Engine, EngineConfig
from monitor.instruments import load_instrument_file
from monitor.market import CrashSpec, MarketSpec
from monitor.option_market import Smile, option_chain
from monitor.schema import CollateralAsset, LedgerEvent, PriceTick
from monitor.simulate import SimulationTarget, publish_simulation
from streams.records import OutboundRecord

START = 1_790_000_000_000
EXAMPLE = "deploy/instruments.example.json"


class _Sink:
    def __init__(self) -> None:
        self.records: list[OutboundRecord] = []

    async def send_batch(self, records) -> None:
        self.records.extend(records)


def _chain():
    loaded = load_instrument_file(EXAMPLE)
    btc = loaded.instruments[0]
    return loaded, btc, option_chain(btc, loaded.reference_prices[btc.symbol], START)


def test_the_chain_has_calls_and_puts_around_the_money_for_each_expiry() -> None:
    _, btc, chain = _chain()
    assert len(chain) == 3 * 9 * 2
    assert {i.underlying for i in chain} == {btc.symbol}
    assert {i.settle_asset for i in chain} == {"USDT"}
    strikes = sorted({i.strike for i in chain})
    assert strikes[0] < 91_500 < strikes[-1]


def test_the_smile_is_skewed_to_puts_and_rises_in_a_sell_off() -> None:
    _, _, chain = _chain()
    smile = Smile(chain, 91_500.0)
    vols = smile.vols(91_500.0, START)
    low = smile.strike < 80_000
    high = smile.strike > 105_000
    assert vols[low].mean() > vols[high].mean()
    assert (smile.vols(64_000.0, START) > vols).all()


def test_a_crash_liquidates_short_option_and_coin_margined_accounts() -> None:
    loaded, btc, chain = _chain()
    perpetual = inverse_perpetual("BTC")
    instruments = [*loaded.instruments, perpetual, *chain]
    prices = {**loaded.reference_prices, perpetual.symbol: loaded.reference_prices[btc.symbol]}
    start = [prices.get(i.symbol, 0.0) for i in instruments]
    step_s = len(instruments) / 500
    spec = MarketSpec(
        seed=3,
        start_ts=START,
        step_s=step_s,
        crash=CrashSpec(at_s=5, drop=0.3, duration_s=3),
        accounts=400,
    )
    target = SimulationTarget(
        prices_topic="p", fills_topic="f", rate=500, ticks=len(instruments) * int(12 / step_s)
    )
    sink = _Sink()
    clock = itertools.count(0, 0.001)

    async def no_sleep(_: float) -> None:
        return None

    asyncio.run(
        publish_simulation(
            sink,
            instruments,
            start,
            spec,
            target,
            clock=lambda: next(clock),
            sleep=no_sleep,
            shift_ticks=False,
        )
    )
    ticks = [msgspec.json.decode(r.value, type=PriceTick) for r in sink.records if r.topic == "p"]
    ledger = [
        msgspec.json.decode(r.value, type=LedgerEvent) for r in sink.records if r.topic == "f"
    ]
    assert any(t.mark_iv is not None for t in ticks)
    books = Counter(e.account for e in ledger if e.account.startswith("opt-"))
    assert len(books) == 100
    btc_collateral = CollateralAsset(asset="BTC", haircut=0.05, price_symbol=btc.symbol)
    engine = Engine(instruments, EngineConfig(collateral=(btc_collateral,)))
    n = len(instruments)
    assert engine.apply([], ticks[:n], START) == []
    assert engine.apply(ledger, [], START) == []  # every account opens healthy
    events = []
    for k in range(n, len(ticks), n):
        events += engine.apply([], ticks[k : k + n], ticks[k].ts)
    option_events = Counter(e.type for e in events if e.account.startswith("opt-"))
    assert option_events["liquidation"] > 0
    inverse_events = Counter(e.type for e in events if e.account.startswith("inv-"))
    assert inverse_events["liquidation"] + inverse_events["bankruptcy"] > 0
    assert engine.verify() == []
    option_rows = np.isin(engine.book.positions.instrument, engine.book.contracts.options)
    assert option_rows.sum() > 100


pytestmark = pytest.mark.filterwarnings("error")
