"""The state machine over margin units, as one fused kernel and its numpy reference.

``monitor.states.classify`` is the rule, written with numpy (about thirty passes over
the unit arrays: equity, scales, every tolerance, every comparison). ``judge`` runs
the same comparisons, in the same floating-point order, per unit in one pass, and
records each transition in place (new state, transition count) with its unit and
previous state in the caller's buffers. ``judge_reference`` does the same through
``classify``; ``tests/unit/test_engine_kernels.py`` checks them against each other.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.book import COLLATERAL, GROSS, INITIAL, MAINTENANCE, UPNL, Index
from monitor.engine._kernels import jit
from monitor.states import BANKRUPT, REL_TOL, classify

__all__ = ["judge", "judge_range", "judge_range_reference", "judge_reference"]


def judge_reference(
    ids: Index,
    state: NDArray[np.int8],
    transitions: NDArray[np.int64],
    figures: NDArray[np.float64],
    open_positions: Index,
    margin_call_ratio: float,
    band: float,
    changed: Index,
    previous: NDArray[np.int8],
) -> int:
    """Classify units ``ids`` (``monitor.states.classify``); for each whose state changes,
    set the new state, count the transition, and append the unit to ``changed`` and its
    old state to ``previous`` (both at least ``ids``' length). Returns how many changed."""
    rows = figures[ids]
    collateral = rows[:, COLLATERAL]
    old = state[ids]
    new = classify(
        old,
        collateral + rows[:, UPNL],
        rows[:, INITIAL],
        rows[:, MAINTENANCE],
        np.abs(collateral) + rows[:, GROSS],
        open_positions[ids],
        margin_call_ratio,
        band,
    )
    moved = np.flatnonzero(new != old)
    count = moved.shape[0]
    units = ids[moved]
    changed[:count] = units
    previous[:count] = old[moved]
    state[units] = new[moved]
    transitions[units] += 1
    return int(count)


def _unit_state(
    previous: Any,
    collateral: Any,
    upnl: Any,
    initial: Any,
    maintenance: Any,
    gross: Any,
    open_positions: Any,
    ratio: Any,
    band: Any,
) -> Any:  # pragma: no cover - compiled by numba; the arithmetic of classify, per unit
    equity = collateral + upnl
    scale = abs(collateral) + gross
    if open_positions == 0:
        debt = BANKRUPT if not (equity + REL_TOL * scale >= 0.0) else 0
        return debt
    upper = 1.0 + band
    ratio_equity = ratio * equity
    ratio_scale = ratio * scale
    # Each condition is a 0/1 count (no branch): the level is how many hold.
    entered = 0
    entered += equity <= 0.0 + REL_TOL * scale
    entered += equity <= maintenance + REL_TOL * (scale + maintenance)
    entered += (not (initial <= equity + REL_TOL * (scale + initial))) | (
        ratio_equity <= maintenance + REL_TOL * (ratio_scale + maintenance)
    )
    low = band * maintenance
    high = upper * maintenance
    stayed = 0
    stayed += equity <= low + REL_TOL * (scale + low)
    stayed += equity <= high + REL_TOL * (scale + high)
    bar = upper * initial
    calm = 1.0 - band
    stayed += (not (bar <= equity + REL_TOL * (scale + bar))) | (
        calm * ratio_equity <= maintenance + REL_TOL * (calm * ratio_scale + maintenance)
    )
    if previous < stayed:
        stayed = previous
    return entered if entered > stayed else stayed


_unit_state_one: Any = jit(_unit_state, None)  # None without numba: the reference is used


def _judge(
    ids: Any,
    state: Any,
    transitions: Any,
    figures: Any,
    open_positions: Any,
    margin_call_ratio: Any,
    band: Any,
    changed: Any,
    previous: Any,
) -> Any:  # pragma: no cover - compiled by numba; checked against the reference
    count = 0
    for k in range(ids.shape[0]):
        u = ids[k]
        old = state[u]
        new = _unit_state_one(
            old, figures[u, COLLATERAL], figures[u, UPNL], figures[u, INITIAL],
            figures[u, MAINTENANCE], figures[u, GROSS], open_positions[u], margin_call_ratio,
            band,
        )  # fmt: skip
        if new != old:
            state[u] = new
            transitions[u] += 1
            changed[count] = u
            previous[count] = old
            count += 1
    return count


judge: Any = jit(_judge, judge_reference)
"""``judge(ids, state, transitions, figures, open_positions, margin_call_ratio, band,
changed, previous) -> count``: ``judge_reference``, fused."""


def judge_range_reference(
    start: int,
    stop: int,
    state: NDArray[np.int8],
    transitions: NDArray[np.int64],
    figures: NDArray[np.float64],
    open_positions: Index,
    margin_call_ratio: float,
    band: float,
    changed: Index,
    previous: NDArray[np.int8],
) -> int:
    """``judge_reference`` of units ``start`` to ``stop - 1`` (every unit, without an id
    array to build and read)."""
    ids = np.arange(start, stop, dtype=np.intp)
    return judge_reference(
        ids, state, transitions, figures, open_positions, margin_call_ratio, band, changed,
        previous,
    )  # fmt: skip


def _judge_range(
    start: Any,
    stop: Any,
    state: Any,
    transitions: Any,
    figures: Any,
    open_positions: Any,
    margin_call_ratio: Any,
    band: Any,
    changed: Any,
    previous: Any,
) -> Any:  # pragma: no cover - compiled by numba; checked against the reference
    count = 0
    for u in range(start, stop):  # as ``judge``
        old = state[u]
        new = _unit_state_one(
            old, figures[u, COLLATERAL], figures[u, UPNL], figures[u, INITIAL],
            figures[u, MAINTENANCE], figures[u, GROSS], open_positions[u], margin_call_ratio,
            band,
        )  # fmt: skip
        if new != old:
            state[u] = new
            transitions[u] += 1
            changed[count] = u
            previous[count] = old
            count += 1
    return count


judge_range: Any = jit(_judge_range, judge_range_reference)
