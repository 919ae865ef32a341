"""The published schemas and the loaders accept and reject the same keys (hypothesis).

A key is added to a random object of a real example (the instruments example file, the
evaluate example in tests/data): ``jsonschema`` against ``liqmon schema`` and the
loader (``load_instrument_file``, ``decode_request``) must agree on whether the document
is still valid: an unknown field in a Struct is rejected by both, a ``_`` comment
accepted by both, a new symbol in a price map accepted by both.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from monitor.cli._schema import document
from monitor.errors import InputError
from monitor.evaluate import decode_request
from monitor.instruments import load_instrument_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = {
    "instruments": json.loads((ROOT / "deploy/instruments.example.json").read_text()),
    "evaluate": json.loads((ROOT / "tests/data/binance_cross_margin_example.json").read_text()),
}
VALIDATORS = {name: jsonschema.Draft202012Validator(document(name)) for name in EXAMPLES}


def _objects(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every JSON object in ``node``."""
    found: list[tuple[Any, ...]] = []
    if isinstance(node, dict):
        found.append(path)
        for key, value in node.items():
            found.extend(_objects(value, (*path, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_objects(value, (*path, index)))
    return found


def _loads(name: str, data: Any, tmp_path: Path) -> bool:
    try:
        if name == "instruments":
            path = tmp_path / "instruments.json"
            path.write_text(json.dumps(data))
            load_instrument_file(path)
        else:
            decode_request(json.dumps(data).encode())
    except InputError:
        return False
    return True


keys = st.one_of(
    st.from_regex(r"[a-z][a-z_]{0,12}", fullmatch=True),
    st.from_regex(r"_[a-z]{1,8}", fullmatch=True),
    st.sampled_from(["symbol", "mmr", "BTCUSDT", "collaterel", "contract_sise", "tierz"]),
)


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(EXAMPLES)), pick=st.integers(min_value=0), key=keys)
def test_schema_and_loader_agree_on_an_added_key(
    name: str, pick: int, key: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data = copy.deepcopy(EXAMPLES[name])
    paths = _objects(data)
    node = data
    for step in paths[pick % len(paths)]:
        node = node[step]
    if key in node:
        return
    node[key] = 1.0
    schema_ok = VALIDATORS[name].is_valid(data)
    event(f"{name}: {'accepted' if schema_ok else 'rejected'}")
    assert schema_ok == _loads(name, data, tmp_path_factory.mktemp("doc")), (name, key)
