"""The engine bench's pure-Python baseline: the full revaluation's arithmetic one position
and one account at a time (tier lookup, IM/MM, uPnL, per-account sums, states), over
plain lists converted beforehand so that only the loop is timed (``bench_engine.py``,
``full_revaluation`` against ``python_loop``)."""

from __future__ import annotations

import math
from typing import NamedTuple

from monitor.engine import Engine


class PythonInputs(NamedTuple):
    """The book as plain lists, converted once outside the timed loop."""

    instrument: list[int]
    qty: list[float]
    entry: list[float]
    leverage: list[float]
    unit: list[int]
    mark: list[float]
    floors: list[list[float]]
    mmr: list[list[float]]
    imr: list[list[float]]
    cum: list[list[float]]
    mm_slope: list[float]
    im_slope: list[float]
    balance: list[float]


def python_inputs(engine: Engine) -> PythonInputs:
    book = engine.book
    pos = book.positions
    layout = engine.models.layout
    return PythonInputs(
        pos.instrument.tolist(),
        pos.qty.tolist(),
        pos.entry.tolist(),
        pos.leverage.tolist(),
        pos.unit.tolist(),
        book.mark.tolist(),
        layout.floors.tolist(),
        layout.mmr.tolist(),
        layout.imr.tolist(),
        layout.cum.tolist(),
        layout.mm_slope.tolist(),
        layout.im_slope.tolist(),
        book.accounts.balance[:, 0].tolist(),
    )


def python_loop(inputs: PythonInputs, rows: list[int]) -> None:
    """The same valuation, one position and one account at a time, in plain Python.

    Only the loop is timed: the lists come from :func:`python_inputs`, built beforehand.
    """
    (
        instrument,
        qty,
        entry,
        leverage,
        unit,
        mark,
        floors,
        mmr,
        imr,
        cum,
        mm_slope,
        im_slope,
        balance,
    ) = inputs
    sums: dict[int, list[float]] = {}
    for row in rows:
        ix = instrument[row]
        size = abs(qty[row])
        notional = size * mark[ix]
        tier = 0
        for floor in floors[ix][1:]:
            if notional > floor:
                tier += 1
        mm_rate = mmr[ix][tier] + mm_slope[ix] * size
        im_rate = imr[ix][tier] + im_slope[ix] * size
        lev = leverage[row]
        if not math.isnan(lev):
            im_rate = max(im_rate, 1.0 / lev)
        acc = sums.setdefault(unit[row], [0.0, 0.0, 0.0])
        acc[0] += qty[row] * (mark[ix] - entry[row])
        acc[1] += notional * im_rate
        acc[2] += notional * mm_rate - cum[ix][tier]
    states = {}
    for u, (upnl, im, mm) in sums.items():
        equity = balance[u] + upnl
        states[u] = (
            3
            if equity <= 0
            else 2
            if equity <= mm
            else 1
            if equity < im or mm >= 0.8 * equity
            else 0
        )
