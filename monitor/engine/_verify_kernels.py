"""The sweep's per-slice work on a book of linear contracts, in one compiled pass.

``VerifySweep`` checks a slice of units with numpy: walk the row lists, gather every
listed row, value it from scratch, compare, sum (about thirty array passes over
scattered rows). ``check_unit_rows`` does it per unit in one walk, with the arithmetic
of ``monitor.engine._kernels`` (so fresh figures are exactly those of the full
revaluation) and records what differs; the numpy path stays the reference and the
path for books with inverse or option contracts (``tests/unit/test_engine_verify_sweep.py``
runs the same findings through both).
"""

from __future__ import annotations

from typing import Any

from monitor.engine._kernels import _bracket_one, _linear_one, jit
from monitor.states import REL_TOL

__all__ = ["BAD_CYCLE", "BAD_LISTED", "check_unit_rows"]

BAD_LISTED = 3  # a listed row that is flat or belongs to another unit
BAD_CYCLE = 4  # a list longer than one row per instrument


def _check_unit_rows(
    start: Any,
    stop: Any,
    head: Any,
    unit_next: Any,
    row_unit: Any,
    instrument: Any,
    qty: Any,
    entry: Any,
    leverage: Any,
    mark: Any,
    contract_size: Any,
    settle_value: Any,
    floors: Any,
    mmr: Any,
    imr: Any,
    cum: Any,
    mm_slope: Any,
    im_slope: Any,
    row_figures: Any,
    sums: Any,
    listed: Any,
    bad_at: Any,
    bad_kind: Any,
    bad_fresh: Any,
    bad_unit: Any,
) -> Any:  # pragma: no cover - compiled by numba; checked against the numpy sweep
    """Units ``start`` to ``stop - 1``: ``sums[u - start, 1:5]`` and ``listed`` from their
    row lists, and each problem as (row or unit, kind: 0-2 a figure column, BAD_LISTED,
    BAD_CYCLE, fresh value, unit walked) in the ``bad_*`` buffers. Returns how many problems there
    were (more than the buffers hold, then)."""
    bound = floors.shape[0]  # a unit holds at most one row per instrument
    found = 0
    capacity = bad_at.shape[0]
    for u in range(start, stop):
        k = u - start
        row = head[u]
        steps = 0
        while row != -1 and steps <= bound:
            q = qty[row]
            if row_unit[row] != u or q == 0.0:
                if found < capacity:
                    bad_at[found], bad_kind[found], bad_fresh[found] = row, BAD_LISTED, 0.0
                    bad_unit[found] = u
                found += 1
            ix = instrument[row]
            cs, m = contract_size[ix], mark[ix]
            b = _bracket_one(q, cs, m, ix, floors)
            upnl, initial, maintenance = _linear_one(
                q, entry[row], leverage[row], cs, m, settle_value[ix], mmr[ix, b], imr[ix, b],
                cum[ix, b], mm_slope[ix], im_slope[ix],
            )  # fmt: skip
            tolerance = REL_TOL * (abs(upnl) + initial + maintenance)
            for column, fresh in ((0, upnl), (1, initial), (2, maintenance)):
                if not abs(row_figures[row, column] - fresh) <= tolerance:
                    if found < capacity:
                        bad_at[found], bad_kind[found], bad_fresh[found] = row, column, fresh
                        bad_unit[found] = u
                    found += 1
            sums[k, 1] += upnl
            sums[k, 2] += initial
            sums[k, 3] += maintenance
            sums[k, 4] += abs(upnl)
            listed[k] += 1
            row = unit_next[row]
            steps += 1
        if row != -1:
            if found < capacity:
                bad_at[found], bad_kind[found], bad_fresh[found] = u, BAD_CYCLE, 0.0
                bad_unit[found] = u
            found += 1
    return found


check_unit_rows: Any = jit(_check_unit_rows, None)
"""Compiled only: without numba the sweep takes its numpy path."""
