"""The compiled, columnar form of every instrument's margin model.

Both model kinds share one layout so that a batch of positions of mixed
instruments is valued without branching per kind: row ``i`` is instrument ``i``,
column ``j`` its bracket ``j``. A size-scaled instrument is one bracket (its base
rates, ``cum = 0``) plus per-unit slopes; a tiered instrument has zero slopes.
Short bracket lists are padded: floors with ``+inf`` (never selected), rates and
amounts by repeating the last bracket (harmless if gathered). With that,

    rate(position)  = mmr[i, j] + mm_slope[i] * size
    MM(position)    = notional * rate - cum[i, j]

covers both kinds. Positions address a bracket by its flat index ``i * max_tiers + j``
into the raveled arrays.

Finding ``j`` is the costly step. With few brackets it compares the notional with
each floor column. With more, it reads the bracket off a lookup table indexed by
the notional's leading float bits (its binary exponent and the top ``m`` mantissa
bits, a monotone key), with ``m`` chosen at compile time so that no bucket holds
more than one floor of an instrument; one comparison with that floor then settles
the bracket exactly. Either way the work is a few array passes, independent of
how many positions there are, and never a Python loop over positions.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "KIND_SIZE_SCALED",
    "KIND_TIERED",
    "BracketLookup",
    "Layout",
    "bracket_flat_index",
    "build_lookup",
]

KIND_TIERED: Final = 0
KIND_SIZE_SCALED: Final = 1

# The lookup is used from this many bracket columns on (below, comparing is cheaper),
_LOOKUP_MIN_TIERS: Final = 3
# with at most this many mantissa bits in the key and entries in the table.
_LOOKUP_MAX_BITS: Final = 12
_LOOKUP_MAX_ENTRIES: Final = 1 << 22
_MANTISSA_BITS: Final = 52


class BracketLookup(NamedTuple):
    """Bracket by leading float bits: ``flat = table[row_offset[i] + key]``, then one
    comparison with ``next_floor[flat]`` (the floor of the following bracket)."""

    shift: int
    key_min: int
    key_max: int
    row_offset: NDArray[np.int64]
    table: NDArray[np.intp]
    next_floor: NDArray[np.float64]


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
    # whether every contract_size is 1 (the multiplication is skipped)
    unit_contracts: bool
    lookup: BracketLookup | None

    @property
    def max_tiers(self) -> int:
        """Bracket columns in the padded arrays."""
        return int(self.floors.shape[1])


def bracket_flat_index(
    layout: Layout, instrument_ix: NDArray[np.integer[Any]], notional: NDArray[np.float64]
) -> NDArray[np.intp]:
    """Each position's bracket as a flat index ``instrument_ix * max_tiers + bracket``.

    Brackets cover ``(floor, cap]``: the bracket is the number of floors above the
    first that lie strictly below the notional. A notional at or below 0 is in the
    first bracket; one beyond the last cap stays in the last bracket.
    """
    width = layout.max_tiers
    lookup = layout.lookup
    if lookup is not None:
        key = np.right_shift(notional.view(np.int64), lookup.shift)
        np.clip(key, lookup.key_min, lookup.key_max, out=key)
        key += lookup.row_offset.take(instrument_ix)
        flat = lookup.table.take(key)
        flat += notional > lookup.next_floor.take(flat)
        return flat
    flat = instrument_ix.astype(np.intp, copy=True)  # 8 bytes: ids times tiers
    if width > 1:
        flat *= width
        above = np.empty(notional.shape, dtype=np.bool_)
        for column in layout.floor_columns[1:]:
            np.greater(notional, column.take(instrument_ix), out=above)
            flat += above
    return flat


def build_lookup(floors: NDArray[np.float64], n_tiers: NDArray[np.intp]) -> BracketLookup | None:
    """The bracket lookup for padded ``floors``, or None when comparing is as cheap or
    no key of at most ``_LOOKUP_MAX_BITS`` mantissa bits separates every floor."""
    n, width = floors.shape
    if width < _LOOKUP_MIN_TIERS:
        return None
    inner = [floors[i, 1 : n_tiers[i]] for i in range(n)]  # floors that start a bracket
    every = np.concatenate(inner)
    for bits in range(_LOOKUP_MAX_BITS + 1):
        shift = _MANTISSA_BITS - bits
        keys = [np.right_shift(f.view(np.int64), shift) for f in inner]
        if all(bool(np.all(np.diff(k) > 0)) for k in keys):
            break
    else:
        return None
    every_key = np.right_shift(every.view(np.int64), shift)
    key_min = int(every_key.min())
    key_max = int(every_key.max()) + 1
    buckets = key_max - key_min + 1
    if n * buckets > _LOOKUP_MAX_ENTRIES:
        return None
    # the smallest notional of each bucket
    edges = np.left_shift(np.arange(key_min, key_max + 1, dtype=np.int64), shift).view(np.float64)
    table = np.empty((n, buckets), dtype=np.intp)
    for i, f in enumerate(inner):
        table[i] = i * width + np.searchsorted(f, edges, side="left")
    next_floor = np.full((n, width), np.inf)
    next_floor[:, :-1] = floors[:, 1:]
    row_offset = np.arange(n, dtype=np.int64) * buckets - key_min
    return BracketLookup(
        shift=shift,
        key_min=key_min,
        key_max=key_max,
        row_offset=row_offset,
        table=table.ravel(),
        next_floor=next_floor.ravel(),
    )
