"""`liqmon backtest` end to end: bundled data, JSON shape, one-line errors for bad files."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from monitor.cli import main

pytestmark = pytest.mark.unit

COVERAGE_KEYS = {
    "name",
    "observations",
    "exceedances",
    "expected_exceedances",
    "kupiec",
    "christoffersen",
    "traffic_light",
    "recalibration_scale",
    "es_backtest",
    "ewma_vol_last",
}


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main(["backtest", "--json", *args]) == 0
    result: dict[str, object] = json.loads(capsys.readouterr().out)
    return result


def test_runs_out_of_the_box_on_the_bundled_history(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""  # no progress bar when stderr is not a terminal
    report = json.loads(out)
    assert report["model"] == "instrument"
    assert report["first_day"] == "2007-02-14"
    overall = report["overall"]
    assert isinstance(overall, dict)
    assert set(overall) == COVERAGE_KEYS
    assert set(overall["kupiec"]) == {"lr", "p_value"}
    assert set(overall["christoffersen"]) == {"lr_ind", "p_ind", "lr_cc", "p_cc"}
    assert overall["observations"] == 4 * 1230
    assert set(overall["ewma_vol_last"]) == {"SPX", "IXIC"}
    names = [p["name"] for p in report["portfolios"]]  # type: ignore[attr-defined]
    assert names == ["long_spx", "short_ixic", "spx_vs_ixic", "large_long_spx"]


@pytest.mark.parametrize("model", ["var_hist", "var_fhs"])
def test_var_models_report_an_es_backtest(capsys: pytest.CaptureFixture[str], model: str) -> None:
    report = run_json(capsys, "--model", model, "--confidence", "0.975", "--mpor", "2d")
    assert report["mpor_days"] == 2
    overall = report["overall"]
    assert isinstance(overall, dict)
    assert overall["es_backtest"]["exceptions"] > 0
    assert overall["traffic_light"] in {"green", "yellow", "red"}


def test_table_output_names_every_portfolio(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest"]) == 0
    out = capsys.readouterr().out
    for name in ("long_spx", "short_ixic", "spx_vs_ixic", "large_long_spx", "overall"):
        assert f"\n{name} " in out
    assert "EWMA volatility (annualised, last day): SPX" in out


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


PORTFOLIOS = """{"instruments": [{"symbol": "X", "kind": "linear", "quote": "USD", "base": "X",
  "margin": {"model": "tiered", "tiers": [{"floor": 0, "cap": 1e9, "mmr": 0.01, "imr": 0.02}]}}],
 "portfolios": [{"name": "p", "positions": {"X": 1}}]}"""


@pytest.mark.parametrize(
    ("prices", "portfolios", "message"),
    [
        ("day,X\n2020-01-01,1\n", PORTFOLIOS, "line 1: expected a header 'date,<symbol>,...'"),
        ("date,X\n2020-01-01,1\n2020-01-02,-3\n", PORTFOLIOS, "line 3: X close '-3' must be"),
        ("date,X\n2020-01-02,1\n2020-01-01,2\n", PORTFOLIOS, "line 3: date 2020-01-01 is not"),
        ("date,X\n2020-13-01,1\n", PORTFOLIOS, "line 2: date '2020-13-01' is not YYYY-MM-DD"),
        (
            "date,Y\n2020-01-01,1\n2020-01-02,1\n2020-01-03,1\n",
            PORTFOLIOS,
            "$.instruments[0].symbol: X has no column in the price history (columns: Y)",
        ),
        (
            "date,X\n2020-01-01,1\n2020-01-02,1\n2020-01-03,1\n",
            PORTFOLIOS.replace('{"X": 1}', '{"Z": 1}'),
            "$.portfolios[0].positions.Z: unknown instrument",
        ),
        (
            "date,X\n2020-01-01,1\n2020-01-02,1\n2020-01-03,1\n",
            PORTFOLIOS,
            "the price history has 3 days; model instrument",
        ),
    ],
)
def test_bad_input_is_one_line_with_exit_code_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    prices: str,
    portfolios: str,
    message: str,
) -> None:
    args = [
        "backtest",
        "--prices",
        write(tmp_path / "prices.csv", prices),
        "--portfolios",
        write(tmp_path / "portfolios.json", portfolios),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("liqmon: error: ")
    assert message in err


def test_missing_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--prices", str(tmp_path / "nope.csv")]) == 2
    err = capsys.readouterr().err
    assert "nope.csv: cannot read the price history: No such file or directory" in err


def test_progress_bar_is_drawn_on_a_terminal() -> None:
    master, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    command = [sys.executable, "-m", "monitor", "backtest", "--model", "var_hist"]
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=terminal) as process:
        os.close(terminal)
        screen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal closed: the process has exited
                break
            if not chunk:
                break
            screen += chunk
        assert process.wait(timeout=120) == 0
    os.close(master)
    text = screen.decode(errors="replace")
    assert "backtest:" in text
    assert "/1230 [" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dof", "2"], "dof 2.0 must be greater than 2 (inf for normal paths)"),
        (["--warmup", "1"], "warmup 1: the EWMA needs at least 2 returns"),
    ],
)
def test_bad_settings_are_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["backtest", *args]) == 2
    err = capsys.readouterr().err
    assert err == f"liqmon: error: backtest settings: {message}\n"


def test_a_price_file_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    from monitor.backtest import load_prices

    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfdate,X\n2020-01-01,1\n2020-01-02,2\n2020-01-03,3\n")
    history = load_prices(path)
    assert history.symbols == ("X",)
    assert history.prices[:, 0].tolist() == [1.0, 2.0, 3.0]
