"""The engine's events against an independent reference of the state machine (hypothesis).

With a hysteresis band, every cycle's events must be exactly the
transitions ``tests.reference.states`` finds when it judges every margin unit of the
reference book once after the cycle's ledger events (trigger ``ledger``) and once after
its ticks (trigger ``price``), as docs/events.md describes: same units, same previous and
new states, same event types. A unit whose figures sit within rounding of a threshold
is not compared at that step, and the reference then takes the engine's state for it.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, target
from hypothesis import event as label_example

from monitor.engine import Engine, EngineConfig
from monitor.schema import MarginEvent
from tests.property._histories import COLLATERAL, INSTRUMENTS, histories, materialise, opening
from tests.reference.margin import ReferenceBook
from tests.reference.states import event_type, judge

# A wide band (40 %), so random price paths often land inside it and the hysteresis is
# exercised, not just the entry thresholds.
BAND = 0.4
RATIO = 0.8
CONFIG = EngineConfig(collateral=COLLATERAL, hysteresis=BAND, margin_call_ratio=RATIO)

Key = tuple[str, str | None]  # account, isolated symbol (None: the cross unit)
Transition = tuple[str, str | None, str, str, str]  # key, previous, new, event type


def _judge_all(
    reference: ReferenceBook, states: dict[Key, str], held: list[int]
) -> tuple[set[Transition], set[Key]]:
    """Transitions of every unit (recorded in ``states``), and the units too close to call.

    ``held[0]`` counts units kept at a level only by the band (the hysteresis at work).
    """
    transitions: set[Transition] = set()
    unclear: set[Key] = set()
    for name in sorted(reference.accounts):
        for unit in reference.units(name):
            key = (name, unit.symbol)
            previous = states.get(key, "healthy")
            slack = 1e-7 * (unit.magnitude + unit.initial + unit.maintenance)
            outcomes = {
                judge(
                    previous,
                    unit.equity + shift,
                    unit.initial,
                    unit.maintenance,
                    unit.open_positions,
                    RATIO,
                    BAND,
                )
                for shift in (-slack, 0.0, slack)
            }
            if len(outcomes) > 1:
                unclear.add(key)
                continue
            new = outcomes.pop()
            entered = judge(
                "healthy",
                unit.equity,
                unit.initial,
                unit.maintenance,
                unit.open_positions,
                RATIO,
                BAND,
            )
            held[0] += new != entered
            if new != previous:
                transitions.add((name, unit.symbol, previous, new, event_type(previous, new)))
                states[key] = new
    return transitions, unclear


def _check_phase(
    events: list[MarginEvent],
    trigger: str,
    reference: ReferenceBook,
    states: dict[Key, str],
    engine_states: dict[Key, str],
    held: list[int],
) -> int:
    """Compare one phase's events with the reference; return the transitions compared."""
    published = [e for e in events if e.trigger == trigger]
    for e in published:
        engine_states[(e.account, e.symbol)] = e.state
    expected, unclear = _judge_all(reference, states, held)
    got = {
        (e.account, e.symbol, e.previous_state, e.state, e.type)
        for e in published
        if (e.account, e.symbol) not in unclear
    }
    assert len(published) == len({(e.account, e.symbol) for e in published}), "one per unit"
    assert got == expected, f"{trigger}: engine {sorted(got)}, reference {sorted(expected)}"
    for key in unclear:  # follow the engine through a too-close-to-call step
        states[key] = engine_states.get(key, "healthy")
    return len(got)


def _run(
    raw: tuple[set[str], list[Any]], labels: set[str] | None = None, held: list[int] | None = None
) -> int:
    priced, history = raw
    engine = Engine(INSTRUMENTS, CONFIG)
    reference = ReferenceBook(INSTRUMENTS, collateral=COLLATERAL)
    states: dict[Key, str] = {}
    engine_states: dict[Key, str] = {}
    held = held if held is not None else [0]
    compared = 0
    for cycle, (ledger, ticks) in enumerate([opening(priced), *materialise(history)]):
        events = engine.apply(ledger, ticks, now_ms=cycle * 1_000)
        for item in ledger:
            reference.apply(item)
        compared += _check_phase(events, "ledger", reference, states, engine_states, held)
        for tick in ticks:
            reference.tick(tick.symbol, tick.mark_price)
        compared += _check_phase(events, "price", reference, states, engine_states, held)
        if labels is not None:
            labels.update(e.type for e in events)
    return compared


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories)
def test_every_cycle_publishes_exactly_the_reference_transitions(
    raw: tuple[set[str], list[Any]],
) -> None:
    labels: set[str] = set()
    held = [0]
    _run(raw, labels, held)
    # Steer towards varied transitions, and towards units the band holds at a level.
    target(float(len(labels)), label="kinds of event")
    target(float(min(held[0], 20)), label="judgements held by the band")
    if held[0]:
        labels.add("held by the band")
    for label in sorted(labels):  # `pytest --hypothesis-show-statistics` shows the mix
        label_example(label)


def test_a_known_history_enters_and_leaves_levels() -> None:
    # 4 BTC long on 5,000 USDT: margin call at 28,980 (equity 920 < IM 1,159), liquidation
    # at 28,800 (equity 200 <= MM 526), held there inside the band, cleared by a deposit,
    # then closed.
    history = [
        ([("fill", "a1", "BTCUSDT", "buy", 120_000.0, 1.0, 0.0, None)], [("BTCUSDT", 0.966)]),
        ([], [("BTCUSDT", 0.96)]),
        ([], [("BTCUSDT", 0.96287)]),  # equity 544 in (MM, 1.4 MM]: stays in liquidation
        ([("transfer", "a1", "USDT", 10_000.0)], [("BTCUSDT", 1.0)]),
        ([("fill", "a1", "BTCUSDT", "sell", 120_000.0, 1.0, 0.0, None)], []),
    ]
    labels: set[str] = set()
    held = [0]
    assert _run(({"BTCUSDT"}, history), labels, held) >= 3
    assert held[0] >= 1
    assert labels == {"margin_call", "liquidation", "liquidation_cleared"}


pytestmark = pytest.mark.filterwarnings("error")
