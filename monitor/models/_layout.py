"""The compiled, columnar form of every instrument's margin model.

Both model kinds share one layout so that a batch of positions of mixed
instruments is valued without branching per kind: row ``i`` is instrument ``i``,
column ``j`` its bracket ``j``. A size-scaled instrument is one bracket (its base
rates, ``cum = 0``) plus per-unit slopes; a tiered instrument has zero slopes.
Short bracket lists are padded: floors with ``+inf`` (never selected), rates and
amounts by repeating the last bracket (harmless if gathered). With that,

    rate(position)  = mmr[i, j] + mm_slope[i] * size
    MM(position)    = notional * rate - cum[i, j]

covers both kinds. ``j`` is found by comparing the notional with each floor
column, a loop over the (small, fixed) number of bracket columns, never over
positions.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import numpy as np
from numpy.typing import NDArray

__all__ = ["KIND_SIZE_SCALED", "KIND_TIERED", "Layout", "bracket_index"]

KIND_TIERED: Final = 0
KIND_SIZE_SCALED: Final = 1


class Layout(NamedTuple):
    """Parallel arrays over instruments (``[n]``) and brackets (``[n, max_tiers]``)."""

    contract_size: NDArray[np.float64]
    kind: NDArray[np.int8]
    n_tiers: NDArray[np.intp]
    floors: NDArray[np.float64]
    caps: NDArray[np.float64]
    mmr: NDArray[np.float64]
    imr: NDArray[np.float64]
    cum: NDArray[np.float64]
    mm_slope: NDArray[np.float64]
    im_slope: NDArray[np.float64]
    # floors transposed to [max_tiers, n] so each bracket column is contiguous
    floor_columns: NDArray[np.float64]
    # whether any instrument's rates grow with size (the work is skipped when not)
    has_slopes: bool

    @property
    def max_tiers(self) -> int:
        """Bracket columns in the padded arrays."""
        return int(self.floors.shape[1])


def bracket_index(
    layout: Layout, instrument_ix: NDArray[np.intp], notional: NDArray[np.float64]
) -> NDArray[np.intp]:
    """The bracket of each position: the number of floors above 0 strictly below it.

    Brackets cover ``(floor, cap]``; a notional at or below 0, or NaN, is in the
    first bracket; one beyond the last cap stays in the last bracket.
    """
    tier = np.zeros(notional.shape, dtype=np.intp)
    above = np.empty(notional.shape, dtype=np.bool_)
    for column in layout.floor_columns[1:]:
        np.greater(notional, column.take(instrument_ix), out=above)
        tier += above
    return tier
