"""The AsyncAPI document: generated from the code, published unchanged, valid for the parser.

Validation uses the AsyncAPI project's own parser (npm `@asyncapi/parser`, pinned in
deploy/checks/package.json, installed by `make test`), run by node.
"""

from __future__ import annotations

import json
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
    for variable in [v for v in __import__("os").environ if v.startswith("LIQMON_TOPICS__")]:
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
    assert "valid AsyncAPI 3.1.0, 5 channels" in result.stderr


def test_the_asyncapi_parser_rejects_a_reference_to_a_missing_schema(tmp_path: Path) -> None:
    document: dict[str, Any] = asyncapi_document()
    document["components"]["messages"]["PriceTick"]["payload"] = {
        "$ref": "#/components/schemas/NoSuchSchema"
    }
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(document))
    result = validate(broken)
    assert result.returncode == 1, result.stdout + result.stderr
