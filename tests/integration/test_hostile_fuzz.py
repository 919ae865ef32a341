"""Fuzz `liqmon run` through the real broker with hostile records on both input topics.

Hypothesis builds records that must each be rejected: malformed JSON, wrong types,
non-finite and huge numbers, zero and negative values, timestamps at the integer limits
and far in the future or past, ids of a megabyte, records near the broker's size limit,
unknown instruments and assets. The running process must never exit, every record must
be in ``liqmon-dlq`` with a reason that names its source record, and a restart afterwards
must be clean (ready, no repeated dead letters, still judging accounts).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.schema import PriceTick
from streams import dlq_origin
from streams.settings import client_kwargs
from tests.integration.liqmon_process import LiqmonProcess, judges_a_normal_account
from tests.integration.monitor_harness import MonitorHarness, now_ms

pytestmark = pytest.mark.kafka

_NOW = now_ms()
I64_MAX = 2**63 - 1

bad_ts = st.sampled_from([-1, -(2**63), I64_MAX, 2**64 - 1, _NOW * 1000, _NOW + 10 * 86_400_000])
bad_quantity = st.sampled_from([0.0, -1.0, -1e308, 1e308, 1e13, "1", None, True])
bad_price = st.sampled_from([0.0, -5.0, 1e308, 1e13, "100", None, [1]])
bad_amount = st.sampled_from([1e308, -1e308, 1e16, "5", None])
huge_id = st.just("i" * 1_000_000)
unknown_symbol = st.sampled_from(["NOPE", "btcusdt", "", "BTCUSDT "])


def _tick(**override: Any) -> dict[str, Any]:
    return {"symbol": "BTCUSDT", "mark_price": 100.0, "ts": _NOW, **override}


def _fill(**override: Any) -> dict[str, Any]:
    base = {
        "type": "fill",
        "fill_id": "fz",
        "account": "fz",
        "symbol": "BTCUSDT",
        "side": "buy",
        "qty": 1.0,
        "price": 100.0,
        "ts": _NOW,
    }
    return {**base, **override}


def _transfer(**override: Any) -> dict[str, Any]:
    base = {"type": "transfer", "transfer_id": "tz", "account": "fz", "asset": "USDT"}
    return {**base, "amount": 1.0, "ts": _NOW, **override}


_json = msgspec.json.Encoder().encode

bad_tick = st.one_of(
    bad_ts.map(lambda ts: _tick(ts=ts)),
    bad_price.map(lambda p: _tick(mark_price=p)),
    unknown_symbol.map(lambda s: _tick(symbol=s)),
    huge_id.map(lambda s: _tick(symbol=s)),
    st.just({"symbol": "BTCUSDT"}),
).map(_json)

bad_ledger = st.one_of(
    bad_ts.map(lambda ts: _fill(ts=ts)),
    bad_quantity.map(lambda q: _fill(qty=q)),
    bad_price.map(lambda p: _fill(price=p)),
    bad_amount.map(lambda a: _fill(fee=a)),
    bad_amount.map(lambda a: _transfer(amount=a)),
    unknown_symbol.map(lambda s: _fill(symbol=s)),
    st.sampled_from(["DOGE", "usdt", ""]).map(lambda a: _transfer(asset=a)),
    huge_id.map(lambda a: _fill(account=a)),
    huge_id.map(lambda a: _transfer(transfer_id=a)),
    st.just(_fill(side="hold")),
    st.just(_fill(type="swap")),
    st.just(_fill(account="")),
).map(_json)

garbage = st.one_of(
    st.binary(min_size=1, max_size=300).filter(lambda b: not b.strip().startswith((b"{", b"["))),
    st.just(b"{" * 50_000),
    st.just(b'{"type": "fill", "qty": NaN}'),
    st.just(b'{"symbol": "BTCUSDT", "mark_price": Infinity, "ts": 1}'),
    st.just(b"[" + b"1," * 500_000 + b"1]"),  # about 1 MB: near the broker's record limit
    st.just(b"x" * 1_040_000),
)


def generated_records(topics: Any) -> list[tuple[str, bytes]]:
    """Run hypothesis as a generator of (topic, value) pairs, each of which must be rejected."""
    found: list[tuple[str, bytes]] = []

    @settings(
        max_examples=60,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        st.one_of(
            st.tuples(st.just(topics.prices), bad_tick | garbage),
            st.tuples(st.just(topics.fills), bad_ledger | garbage),
        )
    )
    def collect(record: tuple[str, bytes]) -> None:
        found.append(record)

    collect()
    return found


@pytest.fixture
async def proc(harness: MonitorHarness) -> AsyncIterator[LiqmonProcess]:
    process = LiqmonProcess(harness)
    yield process
    await process.close()


async def test_hostile_records_on_both_topics_never_stop_the_monitor(
    harness: MonitorHarness, proc: LiqmonProcess
) -> None:
    h = harness
    await h.prices(PriceTick(symbol="BTCUSDT", mark_price=100.0, ts=now_ms()))
    await proc.start()
    records = generated_records(h.topics)
    assert len(records) >= 30
    sent: set[tuple[str, int, int]] = set()
    producer = AIOKafkaProducer(**client_kwargs(h.kafka), max_request_size=2 * 1024 * 1024)
    await producer.start()
    try:
        for topic, value in records:
            key = b"BTCUSDT" if topic == h.topics.prices else b"fz"
            metadata = await producer.send_and_wait(topic, value=value, key=key)
            sent.add((topic, metadata.partition, metadata.offset))
            proc.assert_running()
    finally:
        await producer.stop()
    found = await _dead_letters_for(h, sent)
    assert set(found) == sent
    assert all(found.values()), "every dead letter names its reason"
    reasons = sorted(set(found.values()))
    print(f"{len(sent)} hostile records, all dead-lettered; reasons: {reasons}")
    await proc.restart()
    await judges_a_normal_account(h, proc, "n1", 100.0)
    again = await _dead_letters_for(h, sent)
    assert len(again) == len(sent), "a restart dead-lettered something twice"
    assert len(await h.read_all(h.topics.dlq)) == len(sent)


async def _dead_letters_for(
    h: MonitorHarness, sent: set[tuple[str, int, int]]
) -> dict[tuple[str, int, int], str]:
    deadline = time.monotonic() + 60
    while True:
        found: dict[tuple[str, int, int], str] = {}
        for record in await h.read_all(h.topics.dlq):
            origin = dlq_origin(record.headers)
            assert origin is not None
            found[(origin.topic, origin.partition, origin.offset)] = origin.reason
        if set(found) >= sent:
            return found
        missing = sorted(sent - set(found))[:5]
        assert time.monotonic() < deadline, f"{len(sent - set(found))} not dead-lettered: {missing}"
        await asyncio.sleep(0.1)
