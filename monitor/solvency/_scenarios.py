"""The stress scenarios: the configured ones, or the defaults for the book's underlyings.

Defaults (docs/solvency.md), per underlying ``B`` (an instrument's ``base``): ``B -30%``,
``B -50%`` and ``B +50%``, each with the volatility shocked up, and ``all -50%``, a joint
crash of every underlying with the volatility up. Optionally the worst day of a daily
price history (:func:`worst_day`): each column's return on the day whose mean return
over the columns was lowest. These are the "extreme but plausible" price moves a CCP's
default-fund stress test runs (CPMI-IOSCO, "Principles for financial market
infrastructures", 2012, principle 4 and its Cover-2 requirement).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from monitor.errors import InputError
from monitor.schema import StressScenario

__all__ = ["default_scenarios", "scenario_problem", "worst_day"]

_SINGLE_MOVES = (-0.3, -0.5, 0.5)
_JOINT_MOVE = -0.5


def default_scenarios(bases: Sequence[str]) -> list[StressScenario]:
    """Each underlying -30 %, -50 %, +50 % with vol up, then all of them -50 % with vol up."""
    found = [
        StressScenario(name=f"{base} {move:+.0%}", moves={base: move}, vol="up")
        for base in bases
        for move in _SINGLE_MOVES
    ]
    found.append(StressScenario(name=f"all {_JOINT_MOVE:+.0%}", default_move=_JOINT_MOVE, vol="up"))
    return found


def scenario_problem(scenarios: Sequence[StressScenario], bases: Sequence[str]) -> str | None:
    """What is wrong with a scenario list for a book of ``bases`` (one line), or None."""
    seen: set[str] = set()
    for k, scenario in enumerate(scenarios):
        if scenario.name in seen:
            return f"[{k}].name: {scenario.name!r} is used twice; give each scenario its own name"
        seen.add(scenario.name)
        for base, move in scenario.moves.items():
            if base not in bases:
                return (
                    f"[{k}].moves.{base}: no instrument has base {base!r} "
                    f"(underlyings: {', '.join(bases) or 'none'})"
                )
            if not (math.isfinite(move) and move > -1.0):
                return f"[{k}].moves.{base}: {move!r} must be a finite fraction > -1"
        if not (math.isfinite(scenario.default_move) and scenario.default_move > -1.0):
            return f"[{k}].default_move: {scenario.default_move!r} must be a finite fraction > -1"
    return None


def worst_day(path: Path) -> StressScenario:
    """The worst day of a daily close history ``date,<base>,<base>...`` (one row a day).

    Each column's close-to-close return on the day whose mean return over the columns
    is lowest; the scenario is named ``worst day <date>`` and shocks volatility up.
    """
    try:
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise InputError(f"{path}: cannot read the price history: {exc.strerror}") from None
    if len(rows) < 3 or len(rows[0]) < 2:
        raise InputError(f"{path}: need a header date,<underlying>,... and at least two days")
    header, body = rows[0], rows[1:]
    try:
        closes = np.array([[float(v) for v in row[1:]] for row in body], dtype=np.float64)
    except ValueError as exc:
        raise InputError(f"{path}: every close must be a number ({exc})") from None
    if closes.shape[1] != len(header) - 1 or not bool((closes > 0).all()):
        raise InputError(f"{path}: every row needs one positive close per underlying column")
    returns = closes[1:] / closes[:-1] - 1.0
    day = int(np.argmin(returns.mean(axis=1)))
    moves = {name: float(returns[day, k]) for k, name in enumerate(header[1:])}
    return StressScenario(name=f"worst day {body[day + 1][0]}", moves=moves, vol="up")
