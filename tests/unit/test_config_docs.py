"""The configuration reference and the example file cover every setting there is."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from monitor.config import Settings, env_name, load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "liqmon.example.toml"


def _every_setting() -> list[tuple[str, str]]:
    """(section, field) for every field of every section of Settings."""
    return [
        (section.name, field.name)
        for section in msgspec.structs.fields(Settings)
        for field in msgspec.structs.fields(section.type)
    ]


@pytest.mark.parametrize(("section", "field"), _every_setting())
def test_the_reference_documents_the_setting_and_its_variable(section: str, field: str) -> None:
    reference = (ROOT / "docs" / "configuration.md").read_text()
    row = f"| `{section}.{field}` |"
    assert row in reference
    line = next(line for line in reference.splitlines() if line.startswith(row))
    assert f"`{env_name(f'{section}.{field}')}`" in line


@pytest.mark.parametrize(("section", "field"), _every_setting())
def test_the_example_file_shows_the_setting(section: str, field: str) -> None:
    example = EXAMPLE.read_text()
    block = example.split(f"[{section}]\n", 1)[1].split("\n[", 1)[0]
    assert re.search(rf"^#? ?{field}( =|:)", block, re.MULTILINE), f"{section}.{field}"


def test_the_example_file_loads_to_the_defaults() -> None:
    assert load_settings(EXAMPLE, environ={}) == Settings()
