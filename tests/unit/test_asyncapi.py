"""The AsyncAPI document: generated from the code, published unchanged, valid for the parser.

Validation uses the AsyncAPI project's own parser (npm `@asyncapi/parser`, pinned in
deploy/checks/package.json, installed by `make test`), run by node.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import typing
from pathlib import Path
from typing import Any

import msgspec
import pytest

from monitor import schema
from monitor.asyncapi import asyncapi_document
from monitor.cli import main
from streams.settings import TopicSettings
from streams.topics import topic_specs

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PUBLISHED = REPO / "docs" / "asyncapi.json"
VALIDATOR = REPO / "deploy" / "checks" / "asyncapi-validate.mjs"


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node, "node not found: deploy/setup-system.sh installs it"
    assert (VALIDATOR.parent / "node_modules" / "@asyncapi" / "parser").is_dir(), (
        "the AsyncAPI parser is not installed: run `make deploy-checks` (make test does)"
    )
    return subprocess.run(
        [node, str(VALIDATOR), str(path)], capture_output=True, text=True, timeout=120, check=False
    )


def test_published_document_is_what_liqmon_schema_asyncapi_prints(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in [v for v in os.environ if v.startswith("LIQMON_TOPICS__")]:
        monkeypatch.delenv(variable)
    assert main(["schema", "asyncapi"]) == 0
    printed = capsys.readouterr().out
    assert printed == PUBLISHED.read_text(), (
        "docs/asyncapi.json is stale: `liqmon schema asyncapi > docs/asyncapi.json`"
    )


def test_every_topic_is_a_channel_with_its_partitions_and_cleanup_policy() -> None:
    document = asyncapi_document()
    bindings = {
        channel["address"]: channel["bindings"]["kafka"]
        for channel in document["channels"].values()
    }
    specs = topic_specs(TopicSettings())
    assert set(bindings) == {spec.name for spec in specs}
    for spec in specs:
        assert bindings[spec.name]["partitions"] == spec.partitions
        assert bindings[spec.name]["topicConfiguration"]["cleanup.policy"] == [
            spec.configs["cleanup.policy"]
        ]


def test_payload_schemas_are_those_msgspec_generates_from_the_structs() -> None:
    components = asyncapi_document()["components"]["schemas"]
    _, expected = msgspec.json.schema_components(
        [schema.MarginEvent, schema.PriceTick], ref_template="#/components/schemas/{name}"
    )
    for name, generated in expected.items():
        assert components[name] == generated, name
    fields = set(components["MarginEvent"]["properties"])
    assert fields == set(schema.MarginEvent.__struct_fields__)


def test_margin_event_type_header_lists_every_event_type() -> None:
    headers = asyncapi_document()["components"]["messages"]["MarginEvent"]["headers"]
    assert headers["properties"]["type"]["enum"] == list(typing.get_args(schema.MarginEventType))


def test_topic_names_follow_the_settings() -> None:
    topics = TopicSettings().prefixed("venue1-")
    addresses = {c["address"] for c in asyncapi_document(topics)["channels"].values()}
    assert addresses == set(topics.names())


def test_the_asyncapi_parser_accepts_the_published_document() -> None:
    result = validate(PUBLISHED)
    assert result.returncode == 0, result.stdout + result.stderr
    errors = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert not [d for d in errors if d["severity"] <= 1], errors
    assert "valid AsyncAPI 3.1.0, 6 channels" in result.stderr


def test_the_asyncapi_parser_rejects_a_reference_to_a_missing_schema(tmp_path: Path) -> None:
    document: dict[str, Any] = asyncapi_document()
    document["components"]["messages"]["PriceTick"]["payload"] = {
        "$ref": "#/components/schemas/NoSuchSchema"
    }
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(document))
    result = validate(broken)
    assert result.returncode == 1, result.stdout + result.stderr


WIRE_SAMPLES: list[tuple[str, Any]] = [
    ("PriceTick", schema.PriceTick(symbol="BTCUSDT", mark_price=31967.27, ts=1_732_000_000_000)),
    (
        "LedgerEvent",
        schema.Fill(
            fill_id="f1",
            account="a1",
            symbol="BTCUSDT",
            side="buy",
            qty=0.5,
            price=31000.0,
            ts=1_732_000_000_000,
        ),
    ),
    (
        "MarginEvent",
        schema.MarginEvent(
            event_id="e1",
            type="liquidation",
            account="a1",
            state="liquidation",
            previous_state="margin_call",
            equity=90.0,
            initial_margin=200.0,
            maintenance_margin=100.0,
            margin_ratio=None,
            trigger="price",
            trigger_ts=1_732_000_000_000,
            detected_ts=1_732_000_000_010,
            positions=(
                schema.PositionRisk(
                    symbol="BTCUSDT",
                    qty=0.5,
                    entry_price=31000.0,
                    mark_price=30000.0,
                    notional=15000.0,
                    unrealized_pnl=-500.0,
                    initial_margin=200.0,
                    maintenance_margin=100.0,
                    liquidation_price=29900.0,
                    bankruptcy_price=None,
                ),
            ),
            reductions=(schema.Reduction(symbol="BTCUSDT", qty=0.25),),
            shortfall=10.0,
        ),
    ),
    (
        "StateRecord",
        schema.UnitStates(account="a1", units={"": "liquidation"}, ts=1_732_000_000_000),
    ),
    ("StateRecord", schema.VolatilityState(underlying="BTCUSDT", bar=5, close=100.0)),
    (
        "MarginParameters",
        schema.MarginParameters(
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
        ),
    ),
]


def _validator_for(component: str) -> Any:
    import jsonschema

    document = asyncapi_document()
    root = {"$ref": f"#/components/schemas/{component}", "components": document["components"]}
    return jsonschema.Draft202012Validator(root)


@pytest.mark.parametrize(("component", "message"), WIRE_SAMPLES, ids=lambda v: str(v)[:20])
def test_what_liqmon_puts_on_the_wire_validates_against_the_published_schema(
    component: str, message: Any
) -> None:
    wire = json.loads(msgspec.json.encode(message))
    errors = [error.message for error in _validator_for(component).iter_errors(wire)]
    assert not errors


def test_the_published_schema_rejects_an_event_without_its_id() -> None:
    (_, event), *_ = [sample for sample in WIRE_SAMPLES if sample[0] == "MarginEvent"]
    wire = json.loads(msgspec.json.encode(event))
    del wire["event_id"]
    assert list(_validator_for("MarginEvent").iter_errors(wire))
