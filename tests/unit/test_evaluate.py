"""`liqmon evaluate`: what-if figures as JSON, and one-line errors naming the bad field."""

from __future__ import annotations

import copy
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main

pytestmark = pytest.mark.unit

BTC = {
    "symbol": "BTCUSDT",
    "kind": "linear",
    "quote": "USDT",
    "base": "BTC",
    "margin": {
        "model": "tiered",
        "tiers": [{"floor": 0, "cap": 50000, "mmr": 0.004, "imr": 0.008}],
    },
}
ETH = {
    "symbol": "ETHUSDT",
    "kind": "linear",
    "quote": "USDT",
    "base": "ETH",
    "margin": {
        "model": "size_scaled",
        "im": {"base": 0.02, "slope": 0.00005},
        "mm": {"base": 0.01, "slope": 0.00005},
    },
}
REQUEST: dict[str, Any] = {
    "instruments": [BTC, ETH],
    "prices": {"BTCUSDT": 31967.27, "ETHUSDT": 2000.0, "BTC": 30000.0},
    "collateral_assets": [{"asset": "BTC", "haircut": 0.05}],
    "accounts": [
        {
            "account": "a1",
            "mode": "cross",
            "collateral": {"USDT": 1535443.01},
            "positions": [
                {"symbol": "BTCUSDT", "qty": 109.488, "entry_price": 32481.98, "leverage": 20}
            ],
        },
        {
            "account": "a2",
            "mode": "isolated",
            "collateral": {"BTC": 1.0},
            "positions": [
                {"symbol": "ETHUSDT", "qty": -100.0, "entry_price": 1990.0, "margin": 5500.0}
            ],
        },
    ],
}


def run(
    request: object, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    data = request if isinstance(request, bytes) else json.dumps(request).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code = main(["evaluate", "-"])
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_prints_each_accounts_figures(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(REQUEST, capsys, monkeypatch)
    assert (code, err) == (0, "")
    a1, a2 = json.loads(out)
    notional = 109.488 * 31967.27
    upnl = 109.488 * (31967.27 - 32481.98)
    equity = 1535443.01 + upnl
    maintenance = notional * 0.004
    assert a1["account"] == "a1"
    assert a1["state"] == "healthy"
    assert a1["equity"] == pytest.approx(equity)
    assert a1["initial_margin"] == pytest.approx(notional / 20)
    assert a1["maintenance_margin"] == pytest.approx(maintenance)
    assert a1["margin_ratio"] == pytest.approx(maintenance / equity)
    (position,) = a1["positions"]
    assert position["symbol"] == "BTCUSDT"
    assert position["qty"] == 109.488
    assert position["notional"] == pytest.approx(notional)
    assert position["unrealized_pnl"] == pytest.approx(upnl)
    # Binance's one-bracket formula: (WB - qty x EP) / (qty x MMR - qty), cum = 0
    wallet = 1535443.01
    assert position["liquidation_price"] == pytest.approx(
        (wallet - 109.488 * 32481.98) / (109.488 * 0.004 - 109.488)
    )
    assert position["bankruptcy_price"] == pytest.approx(31967.27 - equity / 109.488)

    # a2: isolated short of 100 ETH, judged on its 6000 margin alone.
    eth_notional = 100 * 2000.0
    eth_mm = eth_notional * (0.01 + 0.00005 * 100)
    eth_equity = 5500.0 + 100 * (1990.0 - 2000.0)
    assert a2["state"] == "margin_call"
    (eth,) = a2["positions"]
    assert eth["isolated_margin"] == 5500.0
    assert eth["maintenance_margin"] == pytest.approx(eth_mm)
    assert eth["initial_margin"] == pytest.approx(eth_notional * (0.02 + 0.00005 * 100))
    assert eth["state"] == "margin_call"
    assert eth["margin_ratio"] == pytest.approx(eth_mm / eth_equity)
    assert a2["collateral_value"] == pytest.approx(30000.0 * 0.95 + 5500.0)
    assert a2["equity"] == pytest.approx(30000.0 * 0.95 + eth_equity)


def test_evaluate_reads_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(REQUEST))
    assert main(["evaluate", str(path), "--indent", "0"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert [a["account"] for a in json.loads(out)] == ["a1", "a2"]


def _with(path: str, value: object) -> dict[str, Any]:
    request = copy.deepcopy(REQUEST)
    *parents, last = path.split(".")
    node: Any = request
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is _DELETE:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return request


_DELETE = object()


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (_with("accounts.0.positions.0.qty", "x"), "$.accounts[0].positions[0].qty"),
        (_with("accounts.0.positions.0.qty", 0), "$.accounts[0].positions[0].qty: 0.0 must be"),
        (
            _with("accounts.0.positions.0.symbol", "XRPUSDT"),
            "$.accounts[0].positions[0].symbol: unknown symbol",
        ),
        (
            _with("prices.BTCUSDT", _DELETE),
            "$.accounts[0].positions[0].symbol: no price for BTCUSDT",
        ),
        (_with("prices.BTCUSDT", -1), "$.prices.BTCUSDT: price -1.0 must be"),
        (_with("prices.DOGE", 1), "$.prices.DOGE: unknown symbol"),
        (
            _with("accounts.1.positions.0.margin", _DELETE),
            "$.accounts[1].positions[0].margin: required",
        ),
        (
            _with("accounts.0.positions.0.margin", 5),
            "$.accounts[0].positions[0].margin: only isolated",
        ),
        (_with("accounts.0.positions.0.entry_price", 0), "$.accounts[0].positions[0].entry_price"),
        (_with("accounts.0.positions.0.leverage", 0.5), "$.accounts[0].positions[0].leverage"),
        (_with("accounts.0.collateral.DOGE", 1), "$.accounts[0].collateral.DOGE: unknown asset"),
        (_with("accounts.0.mode", "hedged"), "$.accounts[0].mode"),
        (_with("accounts", _DELETE), "missing required field `accounts`"),
        (_with("instruments.0.margin.tiers.0.imr", 0.001), "instrument BTCUSDT: tier 1: imr"),
        (_with("accounts.1.account", "a1"), "$.accounts[1].account: 'a1' is listed twice"),
        (_with("collateral_assets.0.haircut", 1.5), "$.collateral_assets: collateral BTC: haircut"),
        (b"{not json", "not valid JSON"),
    ],
)
def test_bad_input_is_one_line_naming_the_field_and_exit_code_2(
    request_: object,
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, err = run(request_, capsys, monkeypatch)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("liqmon: error: ")
    assert message in err


def test_a_missing_file_is_one_line_and_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "/nonexistent/request.json"]) == 2
    assert capsys.readouterr().err.startswith(
        "liqmon: error: cannot read /nonexistent/request.json"
    )


def test_python_dash_m_monitor_evaluate_reads_stdin() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "evaluate", "-"],
        input=json.dumps(REQUEST).encode(),
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert [a["state"] for a in json.loads(result.stdout)] == ["healthy", "margin_call"]
