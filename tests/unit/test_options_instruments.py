"""Option and inverse instruments in the instruments file: checked field by field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.errors import ConfigError, InputError
from monitor.instruments import load_instruments
from monitor.models import ContractTable, expiry_ms

OPTION = {
    "symbol": "BTC-27DEC24-60000-C",
    "kind": "option",
    "quote": "USD",
    "base": "BTC",
    "settle": "BTC",
    "underlying": "BTC-27DEC24",
    "strike": 60000,
    "expiry": "2024-12-27T08:00:00Z",
    "option_type": "call",
    "margin": {"model": "option_standard"},
}


def _load(tmp_path: Path, *instruments: dict) -> list:
    path = tmp_path / "instruments.json"
    path.write_text(json.dumps({"instruments": list(instruments)}))
    return load_instruments(path)


def test_an_option_loads_with_its_terms_and_settles_in_its_coin(tmp_path: Path) -> None:
    (option,) = _load(tmp_path, OPTION)
    assert option.settle_asset == "BTC"
    assert expiry_ms(option.expiry) == 1_735_286_400_000  # 2024-12-27 08:00 UTC
    table = ContractTable([option])
    assert table.underlying_symbols == ("BTC-27DEC24",)
    assert bool(table.coin_quoted[0])


def test_an_inverse_contract_settles_in_its_base(tmp_path: Path) -> None:
    (perp,) = _load(
        tmp_path,
        {
            "symbol": "BTC-PERPETUAL",
            "kind": "inverse",
            "quote": "USD",
            "base": "BTC",
            "contract_size": 10,
            "margin": {
                "model": "size_scaled",
                "im": {"base": 0.04, "slope": 0.00005},
                "mm": {"base": 0.02, "slope": 0.00005},
            },
        },
    )
    assert perp.settle_asset == "BTC"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"strike": None}, r"\$.instruments\[0\].strike: required for an option"),
        ({"strike": -1}, r"strike: must be a finite number > 0"),
        ({"expiry": "2024-12-27T08:00:00"}, r"expiry: .* has no UTC offset; end it with Z"),
        ({"expiry": "next friday"}, r"expiry: 'next friday' is not ISO 8601"),
        ({"settle": "ETH"}, r"settle: must be the base \(BTC\) or quote \(USD\)"),
        ({"margin": {"model": "tiered", "tiers": []}}, r"margin.model: an option needs"),
        ({"margin": {"model": "option_standard", "mm_rate": 2}}, r"margin.mm_rate: must be in"),
    ],
)
def test_a_bad_option_field_is_one_line_naming_it(tmp_path: Path, change, message) -> None:
    with pytest.raises(InputError, match=message):
        _load(tmp_path, {k: v for k, v in {**OPTION, **change}.items() if v is not None})


def test_option_fields_on_a_linear_contract_are_refused(tmp_path: Path) -> None:
    linear = {
        "symbol": "BTCUSDT",
        "kind": "linear",
        "quote": "USDT",
        "base": "BTC",
        "strike": 5,
        "margin": {
            "model": "tiered",
            "tiers": [{"floor": 0, "cap": 1e9, "mmr": 0.01, "imr": 0.02}],
        },
    }
    with pytest.raises(InputError, match=r"strike: only options have strike"):
        _load(tmp_path, linear)


def test_the_contract_table_refuses_an_inconsistent_instrument_in_one_line() -> None:
    import msgspec

    from monitor.schema import Instrument

    bad = msgspec.convert({**OPTION, "option_type": None}, Instrument)
    with pytest.raises(ConfigError, match="BTC-27DEC24-60000-C: option_type: required"):
        ContractTable([bad])
