"""Price bands: the kernels that let a tick skip the units it cannot change, with their
numpy references.

A unit's state is a function of its previous state and of eight comparisons of its
equity with zero, its maintenance and its initial margin (``monitor.states.classify``,
hysteresis included). After a unit is judged, each comparison holds by a margin, its
*distance*: the smallest of them is how far the unit's figures can move before any
comparison can flip. In a book of linear contracts every figure is a Lipschitz function
of each mark while a position stays in its margin bracket:

* ``uPnL = qty x contract_size x (mark - entry) x value`` moves by ``|qty| x cs x value``
  per unit of price; so does ``|uPnL|``, hence the rounding scale ``|collateral| + sum
  |uPnL|``;
* ``MM = notional x mm_rate - cum`` and ``IM = notional x im_rate`` (times value) move by
  ``mm_rate`` and ``im_rate`` times that, the rates being fixed inside a bracket.

So if every mark of the unit stays within ``rho`` (relative) of the mark it was judged at,
no comparison moves by more than ``rho x sum(notional x (a + b x max(mm_rate, im_rate)))``
with ``a = max(1, margin_call_ratio)`` and ``b = 1 + hysteresis`` (the largest factors
``classify`` multiplies equity and margins by), times ``1 + REL_TOL`` for the tolerance
terms. ``rho`` is the distance (less a rounding allowance) over that sum. Each open row
keeps its *band*: the prices ``(low, high)`` of its instrument within ``rho`` of the
judged mark and inside its bracket. A tick then judges only the units with a row whose
mark left its band (``monitor.engine._flag_kernels.flag_holders``), revalues every row
of those units at once (``monitor.engine._width_units.revalue_units``) and bands them
again (:func:`band_units`). Whatever the others' cached figures say, their state is
the state a full revaluation would give them.

Bands are stored as float32, rounded inwards (a band is only ever narrower than
computed). A row never banded since it opened, or since the bands were dropped, has
``low = +inf``, ``high = -inf``: it is flagged whenever its mark moves. A unit judged but
given no band (in liquidation or bankrupt, portfolio-margined, or with a distance too
small) is *unbanded* (``UnitTable.unbanded``): a tick finds it by that flag whenever one
of its marks moves, and its rows' bands are left wide open (``-inf``, ``+inf``), so
that they never keep a tick from skipping their holder blocks. A wide-open band is only
ever on a row of an unbanded unit: banding a unit rewrites every row of it, and a row
that opens starts with no band (``PositionTable.add_holder``).

Compiled as ``monitor.engine._kernels.jit`` says; ``tests/unit/test_band_kernels.py``
checks each kernel against its reference, and ``tests/property`` that a banded engine
publishes what an unbanded one does.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from monitor.book import COLLATERAL, GROSS, INITIAL, MAINTENANCE, NO_ROW, UPNL, Index
from monitor.engine._kernels import _bracket_one, jit
from monitor.engine._unit_kernels import unit_rows_of
from monitor.states import REL_TOL

__all__ = ["band_units", "band_units_reference"]

Array = NDArray[np.float64]
Bands = NDArray[np.float32]
Ints = Index

# The rounding allowance: a distance is reduced by this fraction of the unit's
# magnitudes (far above the few ulps two evaluations of a figure can differ by, far
# below REL_TOL, the comparisons' own tolerance), and the Lipschitz bound is widened
# by this fraction (the tolerance terms move too).
_ROUNDING: Final = 1e-11
_WIDEN: Final = 1.0 + 1e-6
# float32 bands, rounded inwards: a float32 rounds to nearest within 2**-24 relative.
# A bound beyond float32's range is clipped to its largest finite value, never inf.
_IN: Final = 2.0**-22
_F32_MAX: Final = float(np.finfo(np.float32).max)
# A bracket's price bounds are pulled inwards by this much, so that the notional
# computed at a price inside the band is in the same bracket despite rounding.
_BRACKET_IN: Final = 1e-12


# ---------------------------------------------------------------------- band


def distance_reference(figures: Array, margin_call_ratio: float, hysteresis: float) -> Array:
    """Per unit (rows of ``UnitTable.figures``): the smallest margin by which any of
    ``classify``'s comparisons holds or fails (each as ``right - left`` of its ``<=``)."""
    collateral, equity = figures[:, COLLATERAL], figures[:, COLLATERAL] + figures[:, UPNL]
    initial, maintenance = figures[:, INITIAL], figures[:, MAINTENANCE]
    scale = np.abs(collateral) + figures[:, GROSS]
    ratio, band = margin_call_ratio, hysteresis
    upper, calm = 1.0 + band, 1.0 - band
    low, high, bar = band * maintenance, upper * maintenance, upper * initial
    margins = (
        REL_TOL * scale - equity,
        maintenance + REL_TOL * (scale + maintenance) - equity,
        equity + REL_TOL * (scale + initial) - initial,
        maintenance + REL_TOL * (ratio * scale + maintenance) - ratio * equity,
        low + REL_TOL * (scale + low) - equity,
        high + REL_TOL * (scale + high) - equity,
        equity + REL_TOL * (scale + bar) - bar,
        maintenance + REL_TOL * (calm * ratio * scale + maintenance) - calm * ratio * equity,
    )
    result: Array = np.min(np.abs(np.stack(margins)), axis=0)
    return result


def _inwards(low: Array, high: Array) -> tuple[Bands, Bands]:
    """float32 bounds no wider than ``(low, high)`` (prices are positive)."""
    low32 = np.minimum(low * (1.0 + _IN), _F32_MAX).astype(np.float32)
    high32 = np.minimum(high * (1.0 - _IN), _F32_MAX).astype(np.float32)
    return low32, high32


def band_units_reference(
    units: Ints,
    eligible: NDArray[np.bool_],
    head: Ints,
    unit_next: Ints,
    instrument: Ints,
    qty: Array,
    leverage: Array,
    mark: Array,
    contract_size: Array,
    settle_value: Array,
    n_tiers: Ints,
    floors: Array,
    mmr: Array,
    imr: Array,
    mm_slope: Array,
    im_slope: Array,
    unit_figures: Array,
    margin_call_ratio: float,
    hysteresis: float,
    low: Bands,
    high: Bands,
    unbanded: NDArray[np.bool_],
) -> tuple[int, int]:
    """Set the band of every row listed by ``units`` (figures fresh, just judged); a unit
    not ``eligible`` (one flag per entry of ``units``), or too near a threshold, gets none:
    it is marked ``unbanded`` and its rows' bands are wide open. A unit with no open row
    is not unbanded (no mark of it can move). Returns how many units became unbanded and
    how many stopped being so. See the module text."""
    slots, rows = unit_rows_of(units, head, unit_next)
    ix = instrument[rows]
    cs, m = contract_size[ix], mark[ix]
    size = np.abs(qty[rows]) * cs
    notional = size * m
    bracket = np.zeros(rows.shape[0], dtype=np.intp)
    for j in range(1, floors.shape[1]):
        bracket += notional > floors[ix, j]
    mm_rate = mmr[ix, bracket] + mm_slope[ix] * size
    im_rate = imr[ix, bracket] + im_slope[ix] * size
    with np.errstate(divide="ignore"):
        im_rate = np.fmax(im_rate, 1.0 / leverage[rows])
    value = notional * settle_value[ix]
    a, b = max(1.0, margin_call_ratio), 1.0 + hysteresis
    weight = value * (a + b * np.maximum(np.abs(mm_rate), np.abs(im_rate)))
    n = units.shape[0]
    lipschitz = np.bincount(slots, weights=weight, minlength=n) * _WIDEN
    magnitude: Array = np.bincount(slots, weights=np.abs(value), minlength=n).astype(np.float64)
    figures = unit_figures[units]
    distance = distance_reference(figures, margin_call_ratio, hysteresis)
    magnitude += (
        np.abs(figures[:, COLLATERAL])
        + figures[:, GROSS]
        + np.abs(figures[:, INITIAL])
        + np.abs(figures[:, MAINTENANCE])
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = (distance - _ROUNDING * magnitude) / lipschitz
    banded = (eligible & (rho > 0.0)) | (np.bincount(slots, minlength=n) == 0)
    was = unbanded[units]
    unbanded[units] = ~banded
    became, left = int(np.count_nonzero(~banded & ~was)), int(np.count_nonzero(banded & was))
    r = rho[slots]
    with np.errstate(divide="ignore", invalid="ignore"):
        floor_low = np.where(bracket >= 1, floors[ix, bracket] / size, 0.0) * (1.0 + _BRACKET_IN)
        above = np.minimum(bracket + 1, floors.shape[1] - 1)
        floor_high = np.where(bracket + 1 < floors.shape[1], floors[ix, above] / size, np.inf) * (
            1.0 - _BRACKET_IN
        )
    row_low, row_high = _inwards(
        np.maximum(m * (1.0 - r), floor_low), np.minimum(m * (1.0 + r), floor_high)
    )
    keep = banded[slots]
    low[rows] = np.where(keep, row_low, np.float32(-np.inf))
    high[rows] = np.where(keep, row_high, np.float32(np.inf))
    return became, left


def _distance(
    collateral: Any,
    upnl: Any,
    initial: Any,
    maintenance: Any,
    gross: Any,
    ratio: Any,
    band: Any,
) -> Any:  # pragma: no cover - compiled by numba; distance_reference per unit
    equity = collateral + upnl
    scale = abs(collateral) + gross
    upper, calm = 1.0 + band, 1.0 - band
    low, high, bar = band * maintenance, upper * maintenance, upper * initial
    d = abs(REL_TOL * scale - equity)
    d = min(d, abs(maintenance + REL_TOL * (scale + maintenance) - equity))
    d = min(d, abs(equity + REL_TOL * (scale + initial) - initial))
    d = min(d, abs(maintenance + REL_TOL * (ratio * scale + maintenance) - ratio * equity))
    d = min(d, abs(low + REL_TOL * (scale + low) - equity))
    d = min(d, abs(high + REL_TOL * (scale + high) - equity))
    d = min(d, abs(equity + REL_TOL * (scale + bar) - bar))
    calm_ratio = calm * ratio
    return min(
        d, abs(maintenance + REL_TOL * (calm_ratio * scale + maintenance) - calm_ratio * equity)
    )


_distance_one: Any = jit(_distance, None)


def _band_units(
    units: Any,
    eligible: Any,
    head: Any,
    unit_next: Any,
    instrument: Any,
    qty: Any,
    leverage: Any,
    mark: Any,
    contract_size: Any,
    settle_value: Any,
    n_tiers: Any,
    floors: Any,
    mmr: Any,
    imr: Any,
    mm_slope: Any,
    im_slope: Any,
    unit_figures: Any,
    margin_call_ratio: Any,
    hysteresis: Any,
    low: Any,
    high: Any,
    unbanded: Any,
) -> tuple[int, int]:  # pragma: no cover - compiled by numba; checked against the reference
    a = max(1.0, margin_call_ratio)
    b = 1.0 + hysteresis
    width = floors.shape[1]
    became = left = 0
    for k in range(units.shape[0]):
        u = units[k]
        if head[u] == NO_ROW:  # no open row: nothing to band, nothing a mark can move
            if unbanded[u]:
                unbanded[u] = False
                left += 1
            continue
        if not eligible[k]:  # no band, whatever its distance: skip the first walk
            if not unbanded[u]:
                unbanded[u] = True
                became += 1
            r = head[u]
            while r != NO_ROW:
                low[r] = -np.inf
                high[r] = np.inf
                r = unit_next[r]
            continue
        lipschitz = magnitude = 0.0
        r = head[u]
        while r != NO_ROW:  # first walk: the unit's Lipschitz sum and magnitude
            ix = instrument[r]
            cs, m = contract_size[ix], mark[ix]
            size = abs(qty[r]) * cs
            bracket = _bracket_one(qty[r], cs, m, ix, floors)
            mm_rate = mmr[ix, bracket] + mm_slope[ix] * size
            im_rate = imr[ix, bracket] + im_slope[ix] * size
            by_leverage = 1.0 / leverage[r]
            im_rate = by_leverage if by_leverage > im_rate else im_rate
            value = size * m * settle_value[ix]
            lipschitz += value * (a + b * max(abs(mm_rate), abs(im_rate)))
            magnitude += abs(value)
            r = unit_next[r]
        lipschitz *= _WIDEN
        c = unit_figures[u, COLLATERAL]
        initial, maintenance = unit_figures[u, INITIAL], unit_figures[u, MAINTENANCE]
        gross = unit_figures[u, GROSS]
        distance = _distance_one(
            c, unit_figures[u, UPNL], initial, maintenance, gross, margin_call_ratio, hysteresis
        )
        magnitude += abs(c) + gross + abs(initial) + abs(maintenance)
        rho = (distance - _ROUNDING * magnitude) / lipschitz
        banded = rho > 0.0
        if banded == unbanded[u]:
            unbanded[u] = not banded
            if banded:
                left += 1
            else:
                became += 1
        r = head[u]
        while r != NO_ROW:  # second walk: each row's band
            if not banded:
                low[r] = -np.inf
                high[r] = np.inf
                r = unit_next[r]
                continue
            ix = instrument[r]
            cs, m = contract_size[ix], mark[ix]
            size = abs(qty[r]) * cs
            bracket = _bracket_one(qty[r], cs, m, ix, floors)
            floor_low = floors[ix, bracket] / size if bracket >= 1 else 0.0
            floor_high = floors[ix, bracket + 1] / size if bracket + 1 < width else np.inf
            row_low = max(m * (1.0 - rho), floor_low * (1.0 + _BRACKET_IN))
            row_high = min(m * (1.0 + rho), floor_high * (1.0 - _BRACKET_IN))
            low[r] = np.float32(min(row_low * (1.0 + _IN), _F32_MAX))
            high[r] = np.float32(min(row_high * (1.0 - _IN), _F32_MAX))
            r = unit_next[r]
    return became, left


band_units: Any = jit(_band_units, band_units_reference)
"""``band_units(units, eligible, head, unit_next, instrument, qty, leverage, mark,
contract_size, settle_value, n_tiers, floors, mmr, imr, mm_slope, im_slope,
unit_figures, margin_call_ratio, hysteresis, low, high, unbanded) -> (became, left)``:
``band_units_reference``, two walks per banded unit, one per unit without a band."""
