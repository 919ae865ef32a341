"""`liqmon schema` prints JSON Schemas generated from the message Structs."""

from __future__ import annotations

import json

import pytest

from monitor.cli import main

pytestmark = pytest.mark.unit


def schema_of(message: str, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["schema", message]) == 0
    document: dict[str, object] = json.loads(capsys.readouterr().out)
    return document


def test_fills_schema_is_a_union_tagged_by_type(capsys: pytest.CaptureFixture[str]) -> None:
    document = schema_of("fills", capsys)
    defs = document["$defs"]
    assert isinstance(defs, dict)
    assert defs["Fill"]["properties"]["type"] == {"enum": ["fill"]}
    assert set(defs["Fill"]["required"]) >= {"fill_id", "account", "symbol", "side", "qty"}
    tags = document["discriminator"]["mapping"]  # type: ignore[index]
    assert set(tags) == {
        "fill",
        "transfer",
        "funding",
        "margin_settings",
        "isolated_margin",
        "delivery",
    }


def test_margin_events_schema_names_the_contract_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    document = schema_of("margin-events", capsys)
    event = document["$defs"]["MarginEvent"]  # type: ignore[index]
    assert {"event_id", "type", "account", "equity", "margin_ratio", "trigger_ts"} <= set(
        event["properties"]
    )


def test_an_unknown_message_kind_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["schema", "nope"])
    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_price_schema_leaves_mark_price_optional_without_a_null_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["schema", "prices"]) == 0
    document = json.loads(capsys.readouterr().out)
    tick = document["$defs"]["PriceTick"]
    assert tick["properties"]["mark_price"] == {"type": "number"}
    assert "mark_iv" in tick["properties"]
    assert set(tick["required"]) == {"symbol", "ts"}
