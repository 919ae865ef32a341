"""`liqmon stress` and `liqmon evaluate --stress`: the same report for a what-if book."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from monitor.cli import main
from monitor.schema import SolvencyReport

pytestmark = pytest.mark.unit

BOOK = Path(__file__).resolve().parents[1] / "data" / "binance_cross_margin_example.json"


def test_stress_and_evaluate_stress_print_the_same_report(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    scenarios = tmp_path / "scenarios.json"
    scenarios.write_text(json.dumps([{"name": "crash", "default_move": -0.4, "vol": "up"}]))
    assert main(["stress", str(BOOK), "--scenarios", str(scenarios), "--fund", "1000"]) == 0
    stressed = msgspec.json.decode(capsys.readouterr().out, type=SolvencyReport)
    args = ["evaluate", "--stress", str(BOOK), "--scenarios", str(scenarios), "--fund", "1000"]
    assert main(args) == 0
    assert msgspec.json.decode(capsys.readouterr().out, type=SolvencyReport) == stressed
    (crash,) = stressed.scenarios
    assert crash.scenario == "crash"
    assert stressed.insurance_fund == 1000.0
    assert crash.bad_debt > 0.0
    assert crash.coverage == pytest.approx(1000.0 / crash.bad_debt)


def test_bad_scenarios_are_one_line_naming_the_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    scenarios = tmp_path / "scenarios.json"
    scenarios.write_text(json.dumps([{"name": "x", "moves": {"DOGE": -0.1}}]))
    assert main(["stress", str(BOOK), "--scenarios", str(scenarios)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("liqmon: error: --scenarios [0].moves.DOGE: no instrument")
    assert error.count("\n") == 1


def test_from_state_with_a_file_too_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stress", "--from-state", "--instruments", str(BOOK), str(BOOK)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "either a FILE of accounts or --from-state" in line


def test_from_state_without_instruments_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stress", "--from-state"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "--from-state needs --instruments FILE" in line
