"""Loading instruments from JSON and TOML files, and the one-line errors for bad ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from monitor.errors import InputError
from monitor.instruments import load_instrument_file, load_instruments
from monitor.schema import SizeScaledMargin, TieredMargin

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "instruments.example.json"


def _btc(**overrides: Any) -> dict[str, Any]:
    instrument: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "kind": "linear",
        "quote": "USDT",
        "base": "BTC",
        "margin": {
            "model": "tiered",
            "tiers": [
                {"floor": 0, "cap": 50_000, "max_leverage": 125, "mmr": 0.004},
                {"floor": 50_000, "cap": 250_000, "max_leverage": 100, "mmr": 0.005, "cum": 50},
            ],
        },
    }
    instrument.update(overrides)
    return instrument


def _write_json(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "instruments.json"
    path.write_text(json.dumps(doc))
    return path


def _error(path: Path) -> str:
    with pytest.raises(InputError) as info:
        load_instruments(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_example_file_loads_with_a_reference_price_for_every_instrument() -> None:
    loaded = load_instrument_file(EXAMPLE)
    symbols = [i.symbol for i in loaded.instruments]
    assert 5 <= len(symbols) <= 12
    assert set(loaded.reference_prices) == set(symbols)
    assert any(isinstance(i.margin, SizeScaledMargin) for i in loaded.instruments)
    assert sum(isinstance(i.margin, TieredMargin) for i in loaded.instruments) >= 5


def test_json_top_level_list_and_object_forms_load_the_same(tmp_path: Path) -> None:
    as_list = _write_json(tmp_path, [_btc()])
    listed = load_instruments(as_list)
    as_object = tmp_path / "object.json"
    as_object.write_text(json.dumps({"instruments": [_btc()]}))
    assert load_instruments(as_object) == listed
    assert listed[0].symbol == "BTCUSDT"
    assert isinstance(listed[0].margin, TieredMargin)
    assert listed[0].margin.tiers[1].cum == 50


def test_toml_instrument_tables_load(tmp_path: Path) -> None:
    path = tmp_path / "instruments.toml"
    path.write_text(
        """
[[instruments]]
symbol = "BTCUSDT"
kind = "linear"
quote = "USDT"
base = "BTC"

[instruments.margin]
model = "tiered"

[[instruments.margin.tiers]]
floor = 0.0
cap = 50000.0
max_leverage = 125.0
mmr = 0.004

[[instruments]]
symbol = "BTC_USDC-PERPETUAL"
kind = "linear"
quote = "USDC"
base = "BTC"

[instruments.margin]
model = "size_scaled"
im = { base = 0.02, slope = 5e-5 }
mm = { base = 0.01, slope = 5e-5 }

[reference_prices]
BTCUSDT = 91500.0
"""
    )
    loaded = load_instrument_file(path)
    assert [i.symbol for i in loaded.instruments] == ["BTCUSDT", "BTC_USDC-PERPETUAL"]
    assert isinstance(loaded.instruments[1].margin, SizeScaledMargin)
    assert loaded.reference_prices == {"BTCUSDT": 91500.0}


def test_comment_keys_starting_with_underscore_are_ignored(tmp_path: Path) -> None:
    path = _write_json(tmp_path, {"_comment": "x", "instruments": [_btc(_source="y")]})
    assert load_instruments(path)[0].symbol == "BTCUSDT"


def test_wrong_type_names_the_path_of_the_field(tmp_path: Path) -> None:
    bad = _btc()
    bad["margin"]["tiers"][1]["mmr"] = "0.5%"
    message = _error(_write_json(tmp_path, {"instruments": [bad]}))
    assert message.startswith(str(tmp_path / "instruments.json") + ": ")
    assert "$.instruments[0].margin.tiers[1].mmr: expected `float`, got `str`" in message


def test_missing_field_names_the_instrument(tmp_path: Path) -> None:
    bad = _btc()
    del bad["quote"]
    assert "$[0]: object missing required field `quote`" in _error(_write_json(tmp_path, [bad]))


def test_unknown_field_is_rejected_with_its_path(tmp_path: Path) -> None:
    bad = _btc(contract_sise=1.0)
    message = _error(_write_json(tmp_path, [bad]))
    assert "$[0].contract_sise: unknown field" in message


def test_unknown_field_inside_a_tier_is_rejected(tmp_path: Path) -> None:
    bad = _btc()
    bad["margin"]["tiers"][0]["mmrr"] = 0.1
    assert "$[0].margin.tiers[0].mmrr: unknown field" in _error(_write_json(tmp_path, [bad]))


def test_unknown_margin_model_is_reported(tmp_path: Path) -> None:
    bad = _btc(margin={"model": "span"})
    assert "$[0].margin.model: invalid value 'span'" in _error(_write_json(tmp_path, [bad]))


def test_gap_between_tiers_is_rejected(tmp_path: Path) -> None:
    bad = _btc()
    bad["margin"]["tiers"][1]["floor"] = 60_000
    message = _error(_write_json(tmp_path, [bad]))
    assert "$[0].margin.tiers[1].floor: must equal the cap of the tier below (50000.0)" in message


def test_maintenance_rate_above_initial_rate_is_rejected(tmp_path: Path) -> None:
    bad = _btc()
    bad["margin"]["tiers"][0]["mmr"] = 0.01
    bad["margin"]["tiers"][0]["max_leverage"] = 125
    assert "$[0].margin.tiers[0].imr: initial rate 0.008 must exceed" in _error(
        _write_json(tmp_path, [bad])
    )


def test_tier_without_imr_or_max_leverage_is_rejected(tmp_path: Path) -> None:
    bad = _btc()
    del bad["margin"]["tiers"][0]["max_leverage"]
    assert "$[0].margin.tiers[0].imr: give imr or max_leverage" in _error(
        _write_json(tmp_path, [bad])
    )


def test_published_cum_that_breaks_continuity_is_rejected(tmp_path: Path) -> None:
    bad = _btc()
    bad["margin"]["tiers"][1]["cum"] = 55
    assert "$[0].margin.tiers[1].cum: 55.0 does not match" in _error(_write_json(tmp_path, [bad]))


def test_example_file_cum_values_match_the_brackets() -> None:
    # The loader checks cum against the continuity rule; loading is the assertion.
    loaded = load_instruments(EXAMPLE)
    btc = next(i for i in loaded if i.symbol == "BTCUSDT")
    assert isinstance(btc.margin, TieredMargin)
    assert btc.margin.tiers[-1].cum == pytest.approx(100_016_300.0)


def test_duplicate_symbol_is_rejected(tmp_path: Path) -> None:
    message = _error(_write_json(tmp_path, [_btc(), _btc()]))
    assert "$[1].symbol: 'BTCUSDT' is already defined at $[0]" in message


def test_size_scaled_maintenance_above_initial_is_rejected(tmp_path: Path) -> None:
    bad = _btc(
        margin={
            "model": "size_scaled",
            "im": {"base": 0.01},
            "mm": {"base": 0.02},
        }
    )
    assert "$[0].margin.im: the initial rate must exceed" in _error(_write_json(tmp_path, [bad]))


def test_non_positive_reference_price_is_rejected(tmp_path: Path) -> None:
    path = _write_json(tmp_path, {"instruments": [_btc()], "reference_prices": {"BTCUSDT": 0}})
    assert "$.reference_prices.BTCUSDT: must be a positive price" in _error(path)


def test_empty_instrument_list_is_rejected(tmp_path: Path) -> None:
    assert "no instruments defined" in _error(_write_json(tmp_path, []))


def test_invalid_json_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "instruments.json"
    path.write_text("[{")
    assert "not valid JSON" in _error(path)


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    assert "cannot read instruments file" in _error(tmp_path / "absent.json")


def test_unsupported_suffix_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "instruments.yaml"
    path.write_text("")
    assert "use a .json or .toml file" in _error(path)
