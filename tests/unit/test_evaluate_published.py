"""`liqmon evaluate` reproduces an exchange's published worked example end to end.

Binance, "How to Calculate Liquidation Price of USDⓈ-M Futures Contracts" (cross margin,
wallet 1,535,443.01 USDT, BTCUSDT and ETHUSDT longs): maintenance margins 71,200.81144 and
356,512.508, liquidation prices 26,316.89 and 1,153.26. Provenance of the inputs and the
2021 brackets: tests/unit/test_exchange_examples.py (TestBinanceCrossMarginExample).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.cli import main

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "binance_cross_margin_example.json"


def test_evaluate_gives_binance_published_cross_margin_figures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["evaluate", str(EXAMPLE)]) == 0
    (account,) = json.loads(capsys.readouterr().out)
    btc, eth = account["positions"]
    assert (btc["symbol"], eth["symbol"]) == ("BTCUSDT", "ETHUSDT")
    assert btc["maintenance_margin"] == pytest.approx(71_200.81144, rel=1e-9)
    assert eth["maintenance_margin"] == pytest.approx(356_512.508, rel=1e-9)
    # Published to the cent: compare within half a cent.
    assert btc["liquidation_price"] == pytest.approx(26_316.89, abs=0.005)
    assert eth["liquidation_price"] == pytest.approx(1_153.26, abs=0.005)
    assert account["equity"] == pytest.approx(1_535_443.01 - 56_354.57 - 448_192.89, abs=0.01)
    # Above maintenance (427,713) but below the brackets' initial margin (about 1.16 M).
    assert account["maintenance_margin"] == pytest.approx(427_713.319566, rel=1e-9)
    assert account["initial_margin"] > account["equity"] > account["maintenance_margin"]
    assert account["state"] == "margin_call"
