"""A running `Monitor` on the real broker, with its inputs and outputs at hand.

Tests publish prices and ledger events, then wait (with a deadline) until the
expected margin events or dead letters show up. Nothing here is mocked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from monitor.config import ServiceSettings, Settings, SolvencySettings
from monitor.dynamic import DynamicSettings
from monitor.schema import (
    Fill,
    Instrument,
    LedgerEvent,
    MarginEvent,
    MarginParameters,
    MarginSettings,
    PriceTick,
    Transfer,
)
from monitor.service import Monitor
from streams import InboundRecord, OutboundRecord, Producer, TableConsumer
from streams.settings import KafkaSettings, TopicSettings

INSTRUMENTS = msgspec.convert(
    [
        {
            "symbol": "BTCUSDT",
            "kind": "linear",
            "quote": "USDT",
            "base": "BTC",
            "margin": {
                "model": "tiered",
                "tiers": [{"floor": 0, "cap": 1e12, "mmr": 0.004, "imr": 0.01}],
            },
        },
        {
            "symbol": "ETHUSDT",
            "kind": "linear",
            "quote": "USDT",
            "base": "ETH",
            "margin": {
                "model": "tiered",
                "tiers": [{"floor": 0, "cap": 1e12, "mmr": 0.005, "imr": 0.02}],
            },
        },
    ],
    list[Instrument],
)

_encode = msgspec.json.Encoder().encode
_decode_event = msgspec.json.Decoder(MarginEvent).decode
_decode_parameters = msgspec.json.Decoder(MarginParameters).decode
_PARAMETERS = ("type", b"margin_parameters")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class MonitorHarness:
    """Publishes inputs, runs monitors, and reads what they publish."""

    def __init__(self, kafka: KafkaSettings, topics: TopicSettings, group_id: str) -> None:
        self.kafka = kafka
        self.topics = topics
        self.group_id = group_id
        self.producer = Producer(kafka)
        self.monitor: Monitor | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> MonitorHarness:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_monitor()
        await self.producer.stop()

    # ------------------------------------------------------------------ inputs

    async def prices(self, *ticks: PriceTick) -> None:
        await self.producer.send_batch(
            OutboundRecord(self.topics.prices, t.symbol.encode(), _encode(t)) for t in ticks
        )

    async def ledger(self, *events: LedgerEvent) -> None:
        await self.producer.send_batch(
            OutboundRecord(self.topics.fills, e.account.encode(), _encode(e)) for e in events
        )

    async def raw(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        await self.producer.send_batch([OutboundRecord(topic, key, value)])

    # ------------------------------------------------------------------ the monitor

    def settings(
        self,
        solvency: SolvencySettings | None = None,
        dynamic: DynamicSettings | None = None,
        **service: Any,
    ) -> Settings:
        options: dict[str, Any] = {
            "group_id": self.group_id,
            "http_port": 0,
            "poll_timeout_ms": 50,
            "sweep_interval_s": 0.5,
            **service,
        }
        return Settings(
            kafka=self.kafka,
            topics=self.topics,
            service=msgspec.convert(options, ServiceSettings),
            solvency=solvency if solvency is not None else SolvencySettings(),
            dynamic=dynamic or DynamicSettings(),
        )

    async def start_monitor(
        self,
        instruments: Sequence[Instrument] = INSTRUMENTS,
        solvency: SolvencySettings | None = None,
        dynamic: DynamicSettings | None = None,
        **service: Any,
    ) -> Monitor:
        """Start a monitor and wait until it is ready (prices caught up, partitions restored)."""
        assert self.monitor is None, "stop the running monitor first"
        monitor = Monitor(self.settings(solvency, dynamic, **service), instruments)
        self.monitor = monitor
        self._task = asyncio.create_task(monitor.run())
        await self.until(lambda: monitor.readiness()[0], "the monitor to be ready", timeout_s=60)
        return monitor

    async def stop_monitor(self) -> None:
        """Stop gracefully (as on SIGTERM) and wait for it; re-raise what it failed with."""
        monitor, task = self.monitor, self._task
        self.monitor, self._task = None, None
        if monitor is None or task is None:
            return
        monitor.stop()
        async with asyncio.timeout(30):
            await task

    async def until(
        self, condition: Callable[[], bool], what: str, timeout_s: float = 30.0
    ) -> None:
        """Wait for ``condition`` with a deadline; fail loudly if the monitor died meanwhile."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            if self._task is not None and self._task.done():
                self._task.result()
                raise AssertionError(f"the monitor stopped while waiting for {what}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
            await asyncio.sleep(0.02)

    # ------------------------------------------------------------------ outputs

    async def read_all(self, topic: str) -> list[InboundRecord]:
        """Every record in ``topic`` right now."""
        got: list[InboundRecord] = []
        async with TableConsumer(self.kafka, topic=topic) as table:
            async with asyncio.timeout(30):
                while not table.caught_up:
                    got += await table.poll_batch(10_000, 100)
        return got

    async def events(self) -> list[MarginEvent]:
        """The account events on margin-events (dynamic-margin parameter records left out)."""
        return [
            _decode_event(r.value)
            for r in await self.read_all(self.topics.margin_events)
            if r.value and _PARAMETERS not in (r.headers or ())
        ]

    async def parameters(self) -> list[MarginParameters]:
        """The dynamic-margin parameter changes on margin-events, in topic order per key."""
        return [
            _decode_parameters(r.value)
            for r in await self.read_all(self.topics.margin_events)
            if r.value and _PARAMETERS in (r.headers or ())
        ]

    async def wait_until_parameters(
        self, condition: Callable[[list[MarginParameters]], bool], timeout_s: float = 30.0
    ) -> list[MarginParameters]:
        """Re-read the parameter changes until ``condition`` holds (deadline ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = await self.parameters()
            if condition(found):
                return found
            if time.monotonic() > deadline:
                scales = [round(c.scale, 4) for c in found]
                raise AssertionError(f"timed out waiting for parameter changes; so far {scales}")
            await asyncio.sleep(0.05)

    async def wait_events(
        self, condition: Callable[[list[MarginEvent]], bool], what: str, timeout_s: float = 30.0
    ) -> list[MarginEvent]:
        """Re-read margin-events until ``condition`` holds on them (deadline ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            events = await self.events()
            if condition(events):
                return events
            if self._task is not None and self._task.done():
                self._task.result()
            if time.monotonic() > deadline:
                seen = [(e.account, e.type) for e in events]
                raise AssertionError(f"timed out waiting for {what}; events so far: {seen}")
            await asyncio.sleep(0.05)


# ---------------------------------------------------------------------- scenario builders


def deposit(account: str, amount: float, ts: int, n: int = 1) -> Transfer:
    return Transfer(
        transfer_id=f"t-{account}-{n}", account=account, asset="USDT", amount=amount, ts=ts
    )


def leverage(account: str, symbol: str, value: float, ts: int) -> MarginSettings:
    return MarginSettings(
        settings_id=f"s-{account}-{symbol}", account=account, symbol=symbol, leverage=value, ts=ts
    )


def buy(
    account: str, qty: float, price: float, ts: int, n: int = 1, symbol: str = "BTCUSDT"
) -> Fill:
    return Fill(
        fill_id=f"f-{account}-{n}",
        account=account,
        symbol=symbol,
        side="buy",
        qty=qty,
        price=price,
        ts=ts,
    )


def btc(price: float, ts: int) -> PriceTick:
    return PriceTick(symbol="BTCUSDT", mark_price=price, ts=ts)


def by_account(events: list[MarginEvent]) -> dict[str, list[str]]:
    """Event types per account, in topic order (one account lives in one partition)."""
    grouped: dict[str, list[str]] = {}
    for event in events:
        grouped.setdefault(event.account, []).append(event.type)
    return grouped


async def open_book(h: MonitorHarness, ts: int) -> None:
    """a1: 90 BTC long at 100, 10x, 1000 USDT. a2: 10 BTC long, well funded. a3: underfunded
    (100 USDT against 125 of initial margin at 4x), but solvent down to 80."""
    await h.ledger(
        deposit("a1", 1000, ts),
        leverage("a1", "BTCUSDT", 10, ts),
        buy("a1", 90, 100, ts),
        deposit("a2", 1000, ts),
        leverage("a2", "BTCUSDT", 10, ts),
        buy("a2", 10, 100, ts),
        deposit("a3", 100, ts),
        leverage("a3", "BTCUSDT", 4, ts),
        buy("a3", 5, 100, ts),
    )
