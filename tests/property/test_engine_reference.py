"""The engine against an independent reference of docs/evaluate.md (hypothesis).

Random ledger histories (fills, transfers, funding, margin settings, isolated margin
moves, redelivered duplicates) and price paths go through ``Engine.apply``; after every
cycle each account's wallet, equity, IM and MM, each position's uPnL, IM, MM and isolated
margin, and the states (``hysteresis = 0``, so states are the levels entered) must match
``tests.reference.margin``, which shares no code with ``monitor.models`` or
``monitor.engine`` (see test_the_reference_imports_no_model_or_engine_code). Each
reported liquidation and bankruptcy price is also re-evaluated by the reference: the
unit's equity there is its maintenance margin, and zero.
"""

from __future__ import annotations

import ast
import copy
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as label_example

from monitor.engine import Engine, EngineConfig
from monitor.schema import AccountRisk
from tests.property._histories import (
    COLLATERAL,
    INSTRUMENTS,
    histories,
    materialise,
    opening,
)
from tests.reference.margin import ReferenceBook, Unit, state_of

# Tight: both sides compute the same formulas in float64, in different orders.
REL = 1e-9

CONFIG = EngineConfig(collateral=COLLATERAL, hysteresis=0.0)


def _close(engine_value: float, reference_value: float, magnitude: float, what: str) -> None:
    assert math.isclose(engine_value, reference_value, rel_tol=REL, abs_tol=REL * magnitude), (
        f"{what}: engine {engine_value!r}, reference {reference_value!r}"
    )


_LEVELS = ("healthy", "margin_call", "liquidation", "bankrupt")


def _clear_state(unit: Unit) -> str | None:
    """The reference state, or None when the figures sit within rounding of a threshold."""
    slack = 1e-7 * (unit.magnitude + unit.initial + unit.maintenance)
    states = {
        state_of(unit.equity + shift, unit.initial, unit.maintenance, unit.open_positions)
        for shift in (-slack, 0.0, slack)
    }
    return states.pop() if len(states) == 1 else None


def _plug_back(
    reference: ReferenceBook, name: str, symbol: str, price: float | None, target: str
) -> None:
    """At a reported liquidation (bankruptcy) price, the reference's unit holding the
    position has equity == MM (== 0): the price re-evaluated by independent code, with
    everything the instrument's tick prices (wrong-way collateral) moved with it."""
    if price is None:
        return
    moved = copy.deepcopy(reference)
    moved.tick(symbol, price)
    position = moved.accounts[name].positions[symbol]
    (unit,) = [u for u in moved.units(name) if u.symbol == (symbol if position.isolated else None)]
    goal = unit.maintenance if target == "maintenance" else 0.0
    slack = REL * (unit.magnitude + unit.maintenance)
    assert abs(unit.equity - goal) <= slack, (
        f"{name}/{symbol} at {target} price {price!r}: equity {unit.equity!r}, wanted {goal!r}"
    )


def _compare(engine: Engine, reference: ReferenceBook, name: str) -> int:
    """Assert the engine's figures of account ``name`` equal the reference's; return the
    number of states compared."""
    risk: AccountRisk = engine.account_risk(name)
    units = reference.units(name)
    magnitude = sum(u.magnitude + u.initial + u.maintenance for u in units)
    wallet = {a: v for a, v in reference.accounts[name].wallet.items() if v != 0.0}
    assert set(risk.collateral) <= set(wallet) | set(reference.accounts[name].wallet)
    for asset in set(risk.collateral) | set(wallet):
        _close(risk.collateral.get(asset, 0.0), wallet.get(asset, 0.0), magnitude, asset)
    _close(risk.equity, sum(u.equity for u in units), magnitude, "equity")
    _close(risk.initial_margin, sum(u.initial for u in units), magnitude, "initial margin")
    _close(risk.maintenance_margin, sum(u.maintenance for u in units), magnitude, "MM")
    _close(risk.collateral_value, sum(u.collateral for u in units), magnitude, "collateral")
    positions = {s: p for s, p in reference.accounts[name].positions.items() if p.qty != 0.0}
    assert sorted(p.symbol for p in risk.positions) == sorted(positions)
    isolated = {u.symbol: u for u in units if u.symbol is not None}
    compared = 0
    for position in risk.positions:
        mine = positions[position.symbol]
        upnl, initial, maintenance, notional = reference.position_figures(position.symbol, mine)
        size = notional + abs(upnl) + initial + maintenance
        _close(position.qty, mine.qty, abs(mine.qty), f"{position.symbol} qty")
        _close(position.entry_price, mine.entry, mine.entry, f"{position.symbol} entry")
        _close(position.unrealized_pnl, upnl, size, f"{position.symbol} uPnL")
        _close(position.initial_margin, initial, size, f"{position.symbol} IM")
        _close(position.maintenance_margin, maintenance, size, f"{position.symbol} MM")
        assert (position.isolated_margin is not None) == mine.isolated
        if mine.isolated:
            unit = isolated[position.symbol]
            assert position.isolated_margin is not None
            _close(position.isolated_margin, unit.collateral, unit.magnitude, "isolated margin")
            expected = _clear_state(unit)
            if expected is not None:
                assert position.state == expected, f"{name}/{position.symbol}"
                compared += 1
    for position in risk.positions:
        _plug_back(reference, name, position.symbol, position.liquidation_price, "maintenance")
        _plug_back(reference, name, position.symbol, position.bankruptcy_price, "zero")
    worst = [_clear_state(u) for u in units]
    if None not in worst:
        assert risk.state == max(worst, key=_LEVELS.index), name  # type: ignore[arg-type]
        compared += 1
    return compared


def _run(raw: tuple[set[str], list[Any]], seen: set[str] | None = None) -> int:
    priced, history = raw
    engine = Engine(INSTRUMENTS, CONFIG)
    reference = ReferenceBook(INSTRUMENTS, collateral=COLLATERAL)
    compared = 0
    for cycle, (ledger, ticks) in enumerate([opening(priced), *materialise(history)]):
        engine.apply(ledger, ticks, now_ms=cycle * 1_000)
        for item in ledger:
            reference.apply(item)
        for tick in ticks:
            reference.tick(tick.symbol, tick.mark_price)
        for name in sorted(reference.accounts):
            compared += _compare(engine, reference, name)
            if seen is not None:
                seen.add(engine.account_risk(name).state)
                seen.update(f"open {p.symbol}" for p in engine.account_risk(name).positions)
    return compared


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories)
def test_every_account_matches_the_reference_after_every_cycle(
    raw: tuple[set[str], list[Any]],
) -> None:
    seen: set[str] = set()
    _run(raw, seen)
    for label in sorted(seen):  # `pytest --hypothesis-show-statistics` shows the mix
        label_example(label)


def test_a_known_history_is_checked_state_by_state() -> None:
    """A fixed history that opens, loses, flips and closes, so the comparison is not vacuous."""
    history = [
        (
            [
                ("settings", "a1", "isolated", "ETHUSDT", 20.0),
                ("fill", "a1", "ETHUSDT", "buy", 40_000.0, 1.0, 1.5, None),
                ("fill", "a1", "BTCUSDT", "sell", 120_000.0, 1.0, 0.0, None),
                ("transfer", "a2", "ETH", 2.5),
                ("fill", "a2", "ETHBTC", "buy", 9_000.0, 1.0, 0.0, "BTC"),
            ],
            [("ETHUSDT", 0.8)],
        ),
        ([("fill", "a1", "BTCUSDT", "buy", 300.0, 1.2, 0.0, None)], [("BTC", 1.25)]),
        ([("fill", "a1", "ETHUSDT", "sell", 120_000.0, 0.85, 0.0, None)], [("ETHBTC", 0.7)]),
        ([("duplicate", 1), ("isolated", "a1", "ETHUSDT", 300.0)], [("ETHUSDT", 1.3)]),
    ]
    assert _run(({"BTCUSDT", "ETHUSDT", "BTC"}, history)) >= 8


def test_the_reference_imports_no_model_or_engine_code() -> None:
    source = Path(__file__).parents[1] / "reference" / "margin.py"
    imported = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    monitor = {name for name in imported if name.startswith("monitor")}
    assert monitor == {"monitor.schema"}, monitor


pytestmark = pytest.mark.filterwarnings("error")
