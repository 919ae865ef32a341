"""Price records taken chunk by chunk as they are polled (``PricePoll``) give what one
batch of them gives, and let go of a chunk's records once its ticks need no further check."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import ServiceSettings
from monitor.engine import Engine, shape_problem
from monitor.guards import Conflation, PriceGuard
from monitor.intake import Intake, PricePoll
from monitor.metrics import Metrics
from monitor.replay._files import FileRecord
from monitor.schema import Instrument, OptionStandardMargin, PriceTick
from tests.unit.test_book_positions import BTC, ETH

pytestmark = pytest.mark.unit

NOW = 1_800_000_000_000
SKEW_MS = 60_000  # ServiceSettings' default max_clock_skew_s


def tick(symbol: str, price: float, ts: int = NOW) -> bytes:
    return json.dumps({"symbol": symbol, "mark_price": price, "ts": ts}).encode()


def records() -> list[FileRecord]:
    """Good ticks of two partitions with every kind of bad one among them."""
    values = [tick("BTCUSDT", 100.0 + k) for k in range(30)]
    values[3] = b"{not json"  # undecodable
    values[8] = tick("DOGEUSDT", 1.0)  # unknown symbol
    values[13] = tick("ETHUSDT", -5.0)  # not a price
    values[17] = tick("ETHUSDT", 2_000.0, NOW + SKEW_MS + 5_000)  # too far ahead of the clock
    values[21] = tick("ETHUSDT", 2_001.0, NOW + SKEW_MS + 500)  # ahead when taken, not later
    # As a poll hands them out: each partition's records in one run, in offset order.
    return [
        FileRecord("prices", k // 15, k % 15, NOW, b"k", value, (), NOW)
        for k, value in enumerate(values)
    ]


def outcome(chunk: int, cycle_ms: int) -> tuple[list[object], list[object], PricePoll]:
    """Ticks and dead letters of the records taken ``chunk`` at a time at NOW, judged by a
    cycle at ``cycle_ms``."""
    intake = Intake(ServiceSettings(), "dlq", Metrics())
    engine = Engine([BTC, ETH])
    taken = records()
    poll = PricePoll()
    for first in range(0, len(taken), chunk):
        intake.take_prices(poll, taken[first : first + chunk], engine, NOW)
    ticks, letters = intake.price_batch(poll, engine, cycle_ms)
    return [msgspec.to_builtins(t) for t in ticks], [(r.key, r.value) for r in letters], poll


@pytest.mark.parametrize("cycle_ms", [NOW, NOW + 1_000])
@pytest.mark.parametrize("chunk", [1, 4, 7, 30])
def test_chunks_give_what_one_batch_at_the_cycles_clock_gives(chunk: int, cycle_ms: int) -> None:
    intake = Intake(ServiceSettings(), "dlq", Metrics())
    whole = intake.price_records(records(), Engine([BTC, ETH]), cycle_ms)
    ticks, letters, poll = outcome(chunk, cycle_ms)
    assert ticks == [msgspec.to_builtins(t) for t in whole[0]]
    assert letters == [(r.key, r.value) for r in whole[1]]
    assert poll.count == 30
    assert poll.batch_ends() == ((0, 15), (1, 15))
    # Five bad records, and the tick stamped 500 ms past the skew when taken is good to a
    # cycle a second later (its own clock decides, as before chunks).
    assert len(letters) == (4 if cycle_ms > NOW else 5)


def test_a_chunk_whose_ticks_all_pass_lets_its_records_go() -> None:
    _, _, poll = outcome(4, NOW)
    kept = [chunk.records is not None for chunk in poll.chunks]
    # Chunks 0-3, 4-7, ...: bad ticks at 8, 13, 17 and 21 (chunks 2-5) wait for the cycle
    # with their chunk's records. So does chunk 0: its undecodable record 3 was rejected
    # when taken, and its other ticks are checked one by one at the cycle.
    assert kept == [True, False, True, True, True, True, False, False]
    assert len(poll.rejections) == 1
    assert [len(chunk.ticks) for chunk in poll.chunks] == [3, 4, 4, 4, 4, 4, 4, 2]
    # Nor are the unknown symbol (8) and the negative price (13) plain ticks: chunks 2
    # and 3. Chunks 4 and 5 decoded as plain ticks; the clock held them back.
    assert [chunk.plain for chunk in poll.chunks] == [False, True, False, False] + [True] * 4
    # A chunk that let its records go carries its ticks conflated for the guard.
    for chunk in poll.chunks:
        assert (chunk.conflation is None) == (chunk.records is not None)
        if chunk.conflation is not None:
            assert chunk.conflation == Conflation.of(chunk.ticks)


def test_a_timestamp_past_int64_sends_its_chunk_to_the_checks_of_each_tick() -> None:
    intake = Intake(ServiceSettings(), "dlq", Metrics())
    engine = Engine([BTC, ETH])
    values = [tick("BTCUSDT", 100.0), tick("ETHUSDT", 2_000.0, 2**64 - 1)]
    taken = [FileRecord("prices", 0, k, NOW, b"k", v, (), NOW) for k, v in enumerate(values)]
    poll = PricePoll()
    intake.take_prices(poll, taken, engine, NOW)
    assert [chunk.conflation for chunk in poll.chunks] == [None]
    ticks, letters = intake.price_batch(poll, engine, NOW)
    assert [t.symbol for t in ticks] == ["BTCUSDT"]
    assert [dict(r.headers)["dlq.reason"] for r in letters] == [b"ts_out_of_range"]


# --------------------------------------------------------------------------- every rule

CALL = Instrument(
    symbol="BTC-C",
    kind="option",
    quote="USDT",
    base="BTC",
    underlying="BTC-USD",
    strike=100.0,
    expiry=4_000_000_000_000,
    option_type="call",
    margin=OptionStandardMargin(),
)
_ABSENT = object()
_FIELDS = {
    "symbol": ["BTCUSDT", "ETHUSDT", "BTC-C", "BTC-USD", "DOGEUSDT"],
    "mark_price": [100.0, 101.0, 2_000.0, 0.0, -5.0, 1e12, 1e13, 0.02, _ABSENT],
    "ts": [NOW, NOW - 5, NOW + SKEW_MS + 500, NOW + SKEW_MS + 5_000, -1, 2**63, _ABSENT],
    "mark_iv": [_ABSENT, _ABSENT, 0.5, 0.0, -1.0, 150.0, None],
    "index_price": [_ABSENT, 99.0, None],
}
_GARBAGE = [b"{not json", b"null", b'{"symbol": 5, "ts": 1}', b'"BTCUSDT"']


@st.composite
def _value(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(_GARBAGE))
    fields = {name: draw(st.sampled_from(choices)) for name, choices in _FIELDS.items()}
    return json.dumps({k: v for k, v in fields.items() if v is not _ABSENT}).encode()


def _one_by_one(values: list[bytes], engine: Engine, cycle_ms: int) -> tuple[list[object], set]:
    """What checking each record on its own by the engine's rules, then screening the
    good ones with a fresh guard, gives: ticks accepted, and (offset, reason) of each bad
    record. No chunks, no plain ticks, no conflation handed to the guard."""
    decode = msgspec.json.Decoder(PriceTick).decode
    good, bad = [], set()
    for offset, value in enumerate(values):
        try:
            item = decode(value)
        except msgspec.ValidationError:
            bad.add((offset, "invalid"))
            continue
        except msgspec.DecodeError:
            bad.add((offset, "undecodable"))
            continue
        reason = shape_problem(engine.book, item)
        if reason is None and item.ts > cycle_ms + SKEW_MS:
            reason = "ts_out_of_range"
        if reason is None:
            good.append(item)
        else:
            bad.add((offset, reason))
    decision = PriceGuard(
        int(ServiceSettings().max_price_age_s * 1000), ServiceSettings().price_band
    ).screen(good, cycle_ms)
    return [msgspec.to_builtins(t) for t in decision.accepted], bad


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(_value(), min_size=1, max_size=40),
    chunk=st.integers(1, 12),
    later_ms=st.sampled_from([0, 1_000, 10_000]),
)
def test_chunks_decide_each_tick_as_the_engines_rules_do(
    values: list[bytes], chunk: int, later_ms: int
) -> None:
    _decide_as_the_engines_rules_do(values, chunk, later_ms)


def _decide_as_the_engines_rules_do(values: list[bytes], chunk: int, later_ms: int) -> None:
    engine = Engine([BTC, ETH, CALL])
    taken = [FileRecord("prices", 0, k, NOW, b"k", v, (), NOW) for k, v in enumerate(values)]
    intake = Intake(ServiceSettings(), "dlq", Metrics())
    poll = PricePoll()
    for first in range(0, len(taken), chunk):
        intake.take_prices(poll, taken[first : first + chunk], engine, NOW)
    ticks, letters = intake.price_batch(poll, engine, NOW + later_ms)
    accepted, bad = _one_by_one(values, engine, NOW + later_ms)
    assert [msgspec.to_builtins(t) for t in ticks] == accepted
    assert all(type(t) is PriceTick for t in ticks)  # never the intake's plain ticks
    headers = [dict(r.headers) for r in letters]
    assert {(int(h["dlq.offset"]), h["dlq.reason"].decode()) for h in headers} == bad


def test_the_symbols_a_chunk_is_decoded_against_are_those_of_the_engine_in_hand() -> None:
    """A rebuild brings a new engine: its book, not the first one, says which symbols pass."""
    intake = Intake(ServiceSettings(), "dlq", Metrics())
    values = [tick("BTCUSDT", 100.0), tick("ETHUSDT", 2_000.0)]
    taken = [FileRecord("prices", 0, k, NOW, b"k", v, (), NOW) for k, v in enumerate(values)]
    outcomes = []
    for engine in (Engine([BTC, ETH]), Engine([BTC]), Engine([])):
        ticks, letters = intake.price_records(taken, engine, NOW)
        reasons = [dict(r.headers)["dlq.reason"] for r in letters]
        outcomes.append(([t.symbol for t in ticks], reasons))
    assert outcomes == [
        (["BTCUSDT", "ETHUSDT"], []),
        (["BTCUSDT"], [b"unknown_instrument"]),
        ([], [b"unknown_instrument", b"unknown_instrument"]),
    ]


@st.composite
def _likely_good_value(draw: st.DrawFn) -> bytes:
    """A good tick of the option book (a linear future, the option marked by price or by
    volatility, its unlisted underlying) or, one time in eight, one field made bad."""
    symbol = draw(st.sampled_from(["BTCUSDT", "ETHUSDT", "BTC-C", "BTC-USD"]))
    fields: dict[str, object] = {"symbol": symbol, "ts": NOW - draw(st.integers(0, 5))}
    if symbol == "BTC-C" and draw(st.booleans()):
        fields["mark_iv"] = draw(st.sampled_from([0.3, 0.5, 100.0]))
        price = draw(st.sampled_from([_ABSENT, 0.0, 0.02]))
    else:
        price = draw(st.sampled_from([100.0, 101.0, 99.5]))
    if price is not _ABSENT:
        fields["mark_price"] = price
    if draw(st.integers(0, 7)) == 0:
        name = draw(st.sampled_from(list(_FIELDS)))
        fields[name] = draw(st.sampled_from(_FIELDS[name]))
    return json.dumps({k: v for k, v in fields.items() if v is not _ABSENT}).encode()


@settings(max_examples=300, deadline=None)
@given(values=st.lists(_likely_good_value(), min_size=1, max_size=40), chunk=st.integers(1, 12))
def test_chunks_of_mostly_good_option_ticks_decide_as_the_engines_rules_do(
    values: list[bytes], chunk: int
) -> None:
    _decide_as_the_engines_rules_do(values, chunk, 0)


def test_a_chunk_with_an_options_volatility_mark_is_taken_plainly() -> None:
    """An option's volatility mark, its underlying and a linear future: all good, so the
    chunk lets its records go; the same with a volatility mark on the future does not."""
    good = [
        json.dumps({"symbol": "BTC-C", "mark_iv": 0.5, "ts": NOW}).encode(),
        json.dumps({"symbol": "BTC-USD", "mark_price": 100.0, "ts": NOW}).encode(),
        tick("BTCUSDT", 100.0),
    ]
    bad = [*good, json.dumps({"symbol": "BTCUSDT", "mark_price": 1.0, "mark_iv": 0.5, "ts": NOW})]
    kept = []
    for values in (good, [v.encode() if isinstance(v, str) else v for v in bad]):
        intake = Intake(ServiceSettings(), "dlq", Metrics())
        engine = Engine([BTC, ETH, CALL])
        taken = [FileRecord("prices", 0, k, NOW, b"k", v, (), NOW) for k, v in enumerate(values)]
        poll = PricePoll()
        intake.take_prices(poll, taken, engine, NOW)
        kept.append([(chunk.plain, chunk.records is not None) for chunk in poll.chunks])
        ticks, letters = intake.price_batch(poll, engine, NOW)
        assert [t.symbol for t in ticks] == ["BTC-C", "BTC-USD", "BTCUSDT"]
        assert [dict(r.headers)["dlq.reason"] for r in letters] == (
            [] if values is good else [b"mark_iv_not_option"]
        )
    assert kept == [[(True, False)], [(False, True)]]
