"""A reference of the state machine with hysteresis, as docs/events.md states it.

Plain comparisons, no tolerance: callers decide what to do when figures sit within
rounding of a threshold. Imports nothing from ``monitor``.
"""

from __future__ import annotations

__all__ = ["LEVELS", "event_type", "judge"]

LEVELS = ("healthy", "margin_call", "liquidation", "bankrupt")


def _entered(equity: float, initial: float, maintenance: float, ratio: float) -> str:
    if equity <= 0:
        return "bankrupt"
    if equity <= maintenance:
        return "liquidation"
    if equity < initial or maintenance / equity >= ratio:
        return "margin_call"
    return "healthy"


def _stays(equity: float, initial: float, maintenance: float, ratio: float, band: float) -> str:
    """The worst level whose staying condition holds."""
    if equity <= band * maintenance:
        return "bankrupt"
    if equity <= (1 + band) * maintenance:
        return "liquidation"
    if equity < (1 + band) * initial or maintenance / equity >= (1 - band) * ratio:
        return "margin_call"
    return "healthy"


def judge(
    previous: str,
    equity: float,
    initial: float,
    maintenance: float,
    open_positions: int,
    ratio: float,
    band: float,
) -> str:
    """The worse of the level entered and the better of ``previous`` and the level stayed."""
    if open_positions == 0:
        return "bankrupt" if equity < 0 else "healthy"
    entered = _entered(equity, initial, maintenance, ratio)
    stayed = _stays(equity, initial, maintenance, ratio, band)
    kept = min(previous, stayed, key=LEVELS.index)
    return max(entered, kept, key=LEVELS.index)


def event_type(previous: str, new: str) -> str:
    """``margin_call``/``liquidation``/``bankruptcy`` entering a worse level; leaving one,
    ``<previous level's event>_cleared``."""
    name = {"margin_call": "margin_call", "liquidation": "liquidation", "bankrupt": "bankruptcy"}
    if LEVELS.index(new) > LEVELS.index(previous):
        return name[new]
    return name[previous] + "_cleared"
