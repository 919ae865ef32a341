"""Margin states, the one threshold comparison, and the hysteresis state machine.

States are ordered by severity, ``healthy < margin_call < liquidation < bankrupt``,
and stored as int8 codes (the order of :data:`STATE_NAMES`). Per margin unit with
equity ``E``, initial margin ``IM`` and maintenance margin ``MM`` (DESIGN.md), the
level a unit *enters*:

* bankrupt when ``E <= 0``;
* liquidation when ``E <= MM``;
* margin_call when ``E < IM`` or ``MM / E >= margin_call_ratio``;
* healthy otherwise.

Hysteresis: a unit *stays* at a level until its figures clear the entry threshold
by the band ``h`` (a fraction): bankrupt until ``E > h * MM``, liquidation until
``E > (1 + h) * MM``, margin_call until ``E >= (1 + h) * IM`` and
``MM / E < (1 - h) * margin_call_ratio``. The new state is
``max(entered, min(previous, stayed))``: any deterioration is reported at once (and
may jump several levels), an improvement only once it is clear of the band. A unit
with no open position cannot be liquidated: it is bankrupt while its equity is
negative (a debt), healthy otherwise.

Every comparison goes through :func:`at_or_below`, with a tolerance relative to the
figures compared (:func:`slack`): ``REL_TOL`` times the magnitudes of both sides. A
margin requirement's magnitude is itself; equity's is the magnitude of its terms,
``|collateral| + sum |uPnL|`` (equity is a sum of terms that can cancel, so its rounding
is relative to the terms, not the result). So ``E <= 0`` allows ``REL_TOL x
(|collateral| + sum |uPnL|)`` and never scales with IM or MM: 1,000 of equity is not
bankrupt however large the position's requirements are. ``REL_TOL`` (1e-9) is far above
float64 rounding (about 1e-16 per operation) and far below any margin at that scale.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from monitor.schema import AccountState, MarginEventType

__all__ = [
    "BANKRUPT",
    "HEALTHY",
    "LIQUIDATION",
    "MARGIN_CALL",
    "REL_TOL",
    "STATE_CODES",
    "STATE_NAMES",
    "at_or_below",
    "classify",
    "event_type",
    "slack",
]

HEALTHY: Final = 0
MARGIN_CALL: Final = 1
LIQUIDATION: Final = 2
BANKRUPT: Final = 3
STATE_NAMES: Final[tuple[AccountState, ...]] = ("healthy", "margin_call", "liquidation", "bankrupt")
STATE_CODES: Final[dict[AccountState, int]] = {name: code for code, name in enumerate(STATE_NAMES)}

# Relative tolerance of every threshold comparison, against the magnitudes compared.
REL_TOL: Final = 1e-9

_ENTERED: Final[tuple[MarginEventType, ...]] = ("margin_call", "liquidation", "bankruptcy")
_CLEARED: Final[tuple[MarginEventType, ...]] = (
    "margin_call_cleared",
    "liquidation_cleared",
    "bankruptcy_cleared",
)


def slack(*magnitudes: NDArray[np.float64] | float) -> NDArray[np.float64]:
    """The tolerance of comparing figures of these magnitudes: ``REL_TOL * sum``.

    Pass the magnitude of each side: for equity, ``|collateral| + sum |uPnL|``; for a
    margin requirement, the requirement.
    """
    total: NDArray[np.float64] = np.asarray(magnitudes[0], dtype=np.float64)
    for magnitude in magnitudes[1:]:
        total = total + magnitude
    result: NDArray[np.float64] = REL_TOL * total
    return result


def at_or_below(
    value: NDArray[np.float64], threshold: NDArray[np.float64], tolerance: NDArray[np.float64]
) -> NDArray[np.bool_]:
    """``value <= threshold``, counting values up to ``tolerance`` (see :func:`slack`) above
    as equal. Every threshold comparison of the state machine is this one."""
    result: NDArray[np.bool_] = value <= threshold + tolerance
    return result


def _below(
    value: NDArray[np.float64], threshold: NDArray[np.float64], tolerance: NDArray[np.float64]
) -> NDArray[np.bool_]:
    """``value < threshold`` by more than the tolerance (the negation of at_or_below)."""
    return ~at_or_below(threshold, value, tolerance)


def _level(*conditions: NDArray[np.bool_]) -> NDArray[np.int8]:
    # The conditions are nested (each implies the next), so the level is their count.
    level = conditions[0].view(np.int8).copy()
    for condition in conditions[1:]:
        level += condition.view(np.int8)
    return level


def classify(
    previous: NDArray[np.int8],
    equity: NDArray[np.float64],
    initial: NDArray[np.float64],
    maintenance: NDArray[np.float64],
    equity_scale: NDArray[np.float64],
    open_positions: NDArray[np.integer[Any]],
    margin_call_ratio: float,
    band: float,
) -> NDArray[np.int8]:
    """The new state of each unit from its figures and previous state (module doc).

    ``equity_scale`` is the magnitude of equity's terms, ``|collateral| + sum |uPnL|``;
    each comparison's tolerance is relative to both sides (:func:`slack`). Entering
    and staying conditions are each nested (bankrupt implies liquidation implies
    margin call, for ``margin_call_ratio <= 1``), so a level is a count of true
    conditions.
    """
    zero = np.zeros_like(equity)
    upper = 1.0 + band
    ratio_equity = margin_call_ratio * equity
    ratio_scale = margin_call_ratio * equity_scale
    entered = _level(
        at_or_below(equity, zero, slack(equity_scale)),
        at_or_below(equity, maintenance, slack(equity_scale, maintenance)),
        _below(equity, initial, slack(equity_scale, initial))
        | at_or_below(ratio_equity, maintenance, slack(ratio_scale, maintenance)),
    )
    stayed = _level(
        at_or_below(equity, band * maintenance, slack(equity_scale, band * maintenance)),
        at_or_below(equity, upper * maintenance, slack(equity_scale, upper * maintenance)),
        _below(equity, upper * initial, slack(equity_scale, upper * initial))
        | at_or_below(
            (1.0 - band) * ratio_equity, maintenance, slack((1.0 - band) * ratio_scale, maintenance)
        ),
    )
    flat = open_positions == 0
    if flat.any():
        debt = _below(equity, zero, slack(equity_scale)).view(np.int8) * np.int8(BANKRUPT)
        entered = np.where(flat, debt, entered)
        stayed = np.where(flat, debt, stayed)
    np.minimum(stayed, previous, out=stayed)
    np.maximum(entered, stayed, out=entered)
    return entered


def event_type(previous: int, new: int) -> MarginEventType:
    """The event of a transition: the level entered, or the level left when improving."""
    if new > previous:
        return _ENTERED[new - 1]
    return _CLEARED[previous - 1]
