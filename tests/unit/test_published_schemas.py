"""Every example file in the repo validates against the schema `liqmon schema` publishes,
and the schemas accept and reject what the loaders accept and reject.

The validator is `jsonschema` (a test-only dependency), so the schemas are checked by
code that shares nothing with msgspec's decoding.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

from monitor.cli._schema import document
from monitor.config import load_settings
from monitor.errors import ConfigError, InputError
from monitor.evaluate import decode_request
from monitor.instruments import load_instrument_file
from monitor.schema import PriceTick

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]

# Every JSON or TOML file liqmon reads, by the schema it must follow. A new example file
# must be added here (test_every_example_file_is_covered).
FILES = {
    "deploy/instruments.example.json": "instruments",
    "deploy/liqmon.example.toml": "settings",
    "deploy/kubernetes/base/liqmon.toml": "settings",
    "deploy/kubernetes/overlays/example/instruments.json": "instruments",
    "tests/data/binance_cross_margin_example.json": "evaluate",
    "tests/data/portfolio_margin_request.json": "evaluate",
}
NOT_LIQMON_INPUT = {
    "deploy/grafana/liqmon.json",
    "deploy/checks/package.json",  # npm checkers of the test suite
    "deploy/checks/package-lock.json",
    "pyproject.toml",
}


def _fenced(path: str, language: str) -> list[str]:
    text = (ROOT / path).read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def _readme_what_if() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"echo '(\{.*?\})' \\", text, flags=re.DOTALL)
    assert match, "README's what-if example moved; update this test"
    return match[1]


# Examples in the docs: (where, schema, parsed document).
DOC_EXAMPLES = [
    *((f"docs/evaluate.md json {k}", "evaluate", json.loads(block))
      for k, block in enumerate(_fenced("docs/evaluate.md", "json"))),
    *((f"docs/events.md json {k}", "margin-events", json.loads(block))
      for k, block in enumerate(_fenced("docs/events.md", "json"))),
    *((f"docs/simulate.md toml {k}", "instruments", tomllib.loads(block))
      for k, block in enumerate(_fenced("docs/simulate.md", "toml"))),
    ("README.md what-if", "evaluate", json.loads(_readme_what_if())),
]  # fmt: skip


def _schema(name: str) -> dict[str, Any]:
    schema = document(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def _errors(instance: Any, name: str) -> list[str]:
    validator = jsonschema.Draft202012Validator(_schema(name))
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]


def _parse(path: Path) -> Any:
    if path.suffix == ".toml":
        return tomllib.loads(path.read_text())
    return json.loads(path.read_text())


def test_every_example_file_is_covered() -> None:
    found = {
        str(p.relative_to(ROOT))
        for pattern in ("deploy/**/*.json", "deploy/**/*.toml", "tests/data/**/*", "*.toml")
        for p in ROOT.glob(pattern)
        if p.is_file() and p.suffix in (".json", ".toml") and "node_modules" not in p.parts
    }
    assert found - NOT_LIQMON_INPUT == set(FILES)


@pytest.mark.parametrize(("path", "name"), FILES.items())
def test_example_file_validates_against_its_published_schema(path: str, name: str) -> None:
    assert _errors(_parse(ROOT / path), name) == []


def test_the_example_files_load() -> None:
    assert load_instrument_file(ROOT / "deploy/instruments.example.json").instruments
    load_settings(ROOT / "deploy/liqmon.example.toml", environ={})
    decode_request((ROOT / "tests/data/binance_cross_margin_example.json").read_bytes())


@pytest.mark.parametrize(
    ("name", "instance"), [(n, i) for _, n, i in DOC_EXAMPLES], ids=[w for w, _, _ in DOC_EXAMPLES]
)
def test_docs_examples_validate_against_the_published_schemas(name: str, instance: Any) -> None:
    assert _errors(instance, name) == []


def test_there_are_docs_examples_to_check() -> None:
    assert {name for _, name, _ in DOC_EXAMPLES} == {"evaluate", "margin-events", "instruments"}


# ------------------------------------------------------------------ schema == loader


def _instruments_doc() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "deploy/instruments.example.json").read_text())
    return data


def _load_instruments(tmp_path: Path, data: Any) -> str | None:
    path = tmp_path / "instruments.json"
    path.write_text(json.dumps(data))
    try:
        load_instrument_file(path)
    except InputError as exc:
        return str(exc)
    return None


INSTRUMENT_TYPOS = {
    "top level": ("reference_price", None),
    "instrument": ("contract_sise", 0),
    "margin": ("tierz", 0, "margin"),
    "tier": ("mmrr", 0, "margin", "tiers", 0),
}


@pytest.mark.parametrize("where", INSTRUMENT_TYPOS.values(), ids=INSTRUMENT_TYPOS.keys())
def test_a_typo_in_an_instruments_file_fails_schema_and_loader(
    tmp_path: Path, where: tuple[Any, ...]
) -> None:
    key, *steps = where
    data = _instruments_doc()
    node: Any = data
    if steps != [None]:
        node = data["instruments"]
        for step in steps:
            node = node[step]
    node[key] = 1.0
    assert _errors(data, "instruments") != []
    message = _load_instruments(tmp_path, data)
    assert message is not None
    assert f".{key}: unknown field" in message


def test_comment_keys_pass_schema_and_loader_at_any_depth(tmp_path: Path) -> None:
    data = _instruments_doc()
    data["instruments"][0]["margin"]["tiers"][0]["_note"] = "Binance 2021"
    data["reference_prices"]["_note"] = "start prices"
    assert _errors(data, "instruments") == []
    assert _load_instruments(tmp_path, data) is None


def test_a_bare_list_of_instruments_passes_schema_and_loader(tmp_path: Path) -> None:
    data = _instruments_doc()["instruments"]
    assert _errors(data, "instruments") == []
    assert _load_instruments(tmp_path, data) is None


def test_a_typo_in_evaluate_input_fails_schema_and_loader() -> None:
    request = json.loads((ROOT / "tests/data/binance_cross_margin_example.json").read_text())
    request = copy.deepcopy(request)
    request["accounts"][0]["collaterel"] = request["accounts"][0].pop("collateral")
    assert _errors(request, "evaluate") != []
    with pytest.raises(InputError) as raised:
        decode_request(json.dumps(request).encode())
    message = str(raised.value)
    assert message.startswith("$.accounts[0].collaterel: unknown field; expected one of ")
    assert "collateral" in message
    assert "\n" not in message


def test_a_typo_in_the_settings_fails_schema_and_loader(tmp_path: Path) -> None:
    text = (ROOT / "deploy/liqmon.example.toml").read_text()
    text = text.replace("hysteresis = 0.05", "hysterisis = 0.05")
    assert "hysterisis" in text
    assert _errors(tomllib.loads(text), "settings") != []
    path = tmp_path / "liqmon.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"config engine\.hysterisis: unknown field"):
        load_settings(path, environ={})


def test_a_typo_in_engine_collateral_fails_schema_and_loader(tmp_path: Path) -> None:
    text = (ROOT / "deploy/liqmon.example.toml").read_text()
    text = text.replace(
        "collateral = []", 'collateral = [{ asset = "BTC", hair_cut = 0.05, price_symbol = "B" }]'
    )
    assert _errors(tomllib.loads(text), "settings") != []
    path = tmp_path / "liqmon.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"hair_cut: unknown field"):
        load_settings(path, environ={})


def test_wire_messages_tolerate_unknown_fields_in_schema_and_decoder() -> None:
    tick = {"symbol": "BTCUSDT", "mark_price": 1.0, "ts": 1, "venue_field": "added later"}
    assert _errors(tick, "prices") == []
    decoded = msgspec.json.decode(json.dumps(tick).encode(), type=PriceTick)
    assert decoded.mark_price == 1.0
    fill = {
        "type": "fill",
        "fill_id": "f",
        "account": "a",
        "symbol": "BTCUSDT",
        "side": "buy",
        "qty": 1.0,
        "price": 1.0,
        "ts": 1,
        "liquidity": "maker",
    }
    assert _errors(fill, "fills") == []


@pytest.mark.parametrize(
    "name",
    ["prices", "fills", "margin-events", "liqmon-state", "instruments", "evaluate", "settings"],
)
def test_liqmon_schema_prints_the_published_schema(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor.cli import main

    assert main(["schema", name]) == 0
    # msgspec writes a NaN default as null, as the CLI does.
    assert json.loads(capsys.readouterr().out) == json.loads(msgspec.json.encode(_schema(name)))


def test_a_typo_inside_a_json_environment_value_names_its_path() -> None:
    variable = "LIQMON_ENGINE__COLLATERAL"
    with pytest.raises(ConfigError) as raised:
        load_settings(None, environ={variable: '[{"asset": "BTC", "haircutt": 0.1}]'})
    assert str(raised.value) == (
        f"config engine.collateral[0].haircutt: unknown field (from env {variable})"
    )


@pytest.mark.parametrize(
    ("name", "instance"), [(n, i) for _, n, i in DOC_EXAMPLES], ids=[w for w, _, _ in DOC_EXAMPLES]
)
def test_docs_examples_are_accepted_by_their_loaders(
    name: str, instance: Any, tmp_path: Path
) -> None:
    from monitor.evaluate import evaluate
    from monitor.schema import MarginEvent

    if name == "evaluate":
        assert evaluate(decode_request(json.dumps(instance).encode()))
    elif name == "instruments":
        path = tmp_path / "instruments.json"
        path.write_text(json.dumps(instance))
        assert load_instrument_file(path).instruments
    else:
        assert msgspec.convert(instance, MarginEvent).type
