"""Filtering and formatting of `liqmon tail`, on records built in memory."""

from __future__ import annotations

from typing import NamedTuple

import msgspec
import pytest

from monitor.schema import Greeks, MarginEvent, MarginParameters, PositionRisk, Reduction
from monitor.tail import TailFilter, format_event, render
from streams.records import Headers

pytestmark = pytest.mark.unit


class Record(NamedTuple):
    topic: str = "margin-events"
    partition: int = 0
    offset: int = 0
    timestamp: int = 0
    key: bytes | None = None
    value: bytes | None = None
    headers: Headers = ()


def _event(**overrides: object) -> MarginEvent:
    fields: dict[str, object] = {
        "event_id": "e1",
        "type": "liquidation",
        "account": "acct-7",
        "state": "liquidation",
        "previous_state": "margin_call",
        "equity": 1234.5,
        "initial_margin": 2000.0,
        "maintenance_margin": 1300.25,
        "margin_ratio": 1.0532,
        "trigger": "price",
        "trigger_ts": 1_732_000_000_000,
        "detected_ts": 1_732_000_000_123,
        "positions": (
            PositionRisk(
                symbol="BTCUSDT",
                qty=-0.5,
                entry_price=91_500.0,
                mark_price=95_000.0,
                notional=47_500.0,
                unrealized_pnl=-1_750.0,
                initial_margin=2000.0,
                maintenance_margin=1300.25,
                liquidation_price=94_900.123,
                bankruptcy_price=97_000.0,
            ),
        ),
        "reductions": (Reduction(symbol="BTCUSDT", qty=0.25),),
        "shortfall": 65.75,
    }
    fields.update(overrides)
    return msgspec.convert(fields, MarginEvent)


def _record(event: MarginEvent, *, header: bool = True, key: bool = True) -> Record:
    return Record(
        key=event.account.encode() if key else None,
        value=msgspec.json.encode(event),
        headers=[("type", event.type.encode())] if header else [],
    )


def test_readable_line_has_time_type_account_figures_trigger_and_positions() -> None:
    line = format_event(_event())
    assert line.startswith("2024-11-19T07:06:40.123Z  liquidation ")
    for part in (
        "acct-7",
        "equity=1,234.50",
        "IM=2,000.00",
        "MM=1,300.25",
        "ratio=1.053",
        "trigger=price",
        "shortfall=65.75",
        "positions=BTCUSDT -0.5@95000 liq 94900.1",
        "reduce=BTCUSDT 0.25",
    ):
        assert part in line
    assert "\n" not in line


def test_isolated_position_event_names_its_symbol() -> None:
    assert "acct-7[ETHUSDT]" in format_event(_event(symbol="ETHUSDT"))


def test_null_ratio_reads_as_infinite() -> None:
    assert "ratio=inf" in format_event(_event(margin_ratio=None, equity=-5.0))


def test_many_positions_are_cut_short() -> None:
    position = _event().positions[0]
    many = tuple(msgspec.structs.replace(position, symbol=f"S{i}") for i in range(5))
    assert "(+2 more)" in format_event(_event(positions=many))


def test_json_output_is_the_event_on_one_line() -> None:
    event = _event()
    line = render(_record(event), TailFilter(), as_json=True)
    assert line is not None
    assert msgspec.json.decode(line, type=MarginEvent) == event
    assert "\n" not in line


def test_type_filter_drops_other_types_by_header_without_decoding() -> None:
    record = _record(_event(type="margin_call"))._replace(value=b"not json at all")
    assert render(record, TailFilter(types=frozenset({"liquidation"})), as_json=False) is None


def test_account_filter_drops_other_accounts_by_key_without_decoding() -> None:
    record = _record(_event())._replace(value=b"not json at all")
    assert render(record, TailFilter(accounts=frozenset({"acct-1"})), as_json=False) is None


def test_type_filter_falls_back_to_the_decoded_type_without_a_header() -> None:
    wanted = TailFilter(types=frozenset({"margin_call"}))
    assert render(_record(_event(), header=False), wanted, as_json=False) is None
    call = _event(type="margin_call", state="margin_call", previous_state="healthy")
    assert render(_record(call, header=False), wanted, as_json=False) is not None


def test_account_filter_falls_back_to_the_decoded_account_without_a_key() -> None:
    wanted = TailFilter(accounts=frozenset({"acct-7"}))
    assert render(_record(_event(), key=False), wanted, as_json=False) is not None
    other = _event(account="acct-8")
    assert render(_record(other, key=False), wanted, as_json=False) is None


def test_matching_type_and_account_are_shown() -> None:
    wanted = TailFilter(types=frozenset({"liquidation"}), accounts=frozenset({"acct-7"}))
    assert render(_record(_event()), wanted, as_json=False) is not None


def test_a_record_that_is_not_a_margin_event_raises_a_decode_error() -> None:
    with pytest.raises(msgspec.DecodeError):
        render(Record(value=b'{"hello": 1}'), TailFilter(), as_json=False)


def test_an_option_position_shows_its_vol_and_delta() -> None:
    option = msgspec.structs.replace(
        _event().positions[0],
        symbol="BTC-27DEC24-90000-P",
        qty=-2.0,
        mark_price=0.035,
        liquidation_price=None,
        mark_iv=0.6234,
        greeks=Greeks(delta=0.81, gamma=-0.0001, vega=-120.0, theta=55.0),
    )
    line = format_event(_event(positions=(option,)))
    assert "positions=BTC-27DEC24-90000-P -2@0.035 iv 62.3% delta +0.81" in line


def _parameters_record() -> Record:
    change = MarginParameters(
        event_id="margin_parameters:BTCUSDT:60000",
        underlying="BTCUSDT",
        instruments=("BTCUSDT",),
        scale=1.25,
        previous_scale=1.0,
        raw_scale=1.4,
        stressed_scale=1.4,
        target_scale=1.4,
        volatility=0.7,
        reference_vol=0.5,
        limited_by=("max_change",),
        announced_ts=60_000,
        ts=60_000,
        detected_ts=60_010,
    )
    return Record(
        key=b"parameters:BTCUSDT",
        value=msgspec.json.encode(change),
        headers=[("type", b"margin_parameters")],
    )


def test_a_margin_parameters_record_reads_as_its_scale_change() -> None:
    line = render(_parameters_record(), TailFilter(), as_json=False)
    assert line is not None
    assert "margin_parameters" in line
    assert "BTCUSDT" in line
    assert "scale=1.0000->1.2500" in line
    assert "limited_by=max_change" in line


def test_an_account_filter_drops_margin_parameters_records() -> None:
    wanted = TailFilter(accounts=frozenset({"acct-1"}))
    assert render(_parameters_record(), wanted, as_json=False) is None
