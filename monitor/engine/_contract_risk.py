"""Per-position risk numbers that depend on the contract kind: liquidation and bankruptcy
prices (linear or inverse arithmetic; none for options, whose value is not linear in one
price), market value and Greeks of options, and Greeks summed per underlying."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from monitor.book import Book, Index
from monitor.models import INVERSE, OPTION
from monitor.models._inverse_liquidation import (
    inverse_bankruptcy_prices,
    inverse_liquidation_prices,
)
from monitor.schema import Greeks

__all__ = ["greeks_by_underlying", "position_greeks", "threshold_prices"]

Array = NDArray[np.float64]


def threshold_prices(
    book: Book,
    instrument: Index,
    qty: Array,
    equity: Array,
    other: Array,
    exposures: tuple[Array, Array] | None = None,
) -> tuple[Array, Array]:
    """(liquidation, bankruptcy) price per position; ``equity`` and ``other`` maintenance
    are in each position's settle asset. NaN where none exists (and for options).

    ``exposures`` (liquidation, bankruptcy) are how much equity minus the other
    maintenance, and equity, move per unit of a linear position's mark (wrong-way
    collateral, see ``ModelTable.liquidation_prices``); the base size when None.
    """
    mark = book.mark[instrument]
    models = book.models
    to_maintenance, to_zero = exposures if exposures is not None else (None, None)
    liquidation = models.liquidation_prices(
        instrument, qty, mark, equity, other, exposure=to_maintenance
    )
    bankruptcy = models.liquidation_prices(
        instrument, qty, mark, equity, other, target_maintenance=False, exposure=to_zero
    )
    if book.contracts.linear_only:
        return liquidation, bankruptcy
    kind = book.contracts.kind[instrument]
    inverse = np.flatnonzero(kind == INVERSE)
    if inverse.size:
        ix = instrument[inverse]
        size = qty[inverse] * book.contract_size[ix]
        liquidation[inverse] = inverse_liquidation_prices(
            models.layout, ix, size, mark[inverse], equity[inverse], other[inverse]
        )
        bankruptcy[inverse] = inverse_bankruptcy_prices(size, mark[inverse], equity[inverse])
    option = kind == OPTION
    liquidation[option] = np.nan
    bankruptcy[option] = np.nan
    return liquidation, bankruptcy


def position_greeks(book: Book, instrument: int, qty: float) -> Greeks | None:
    """A position's Greeks (per-contract Greeks x qty x contract size); None if not an option."""
    if book.contracts.kind[instrument] != OPTION:
        return None
    size = qty * float(book.contract_size[instrument])
    delta, gamma, vega, theta = (size * book.options.greeks[instrument]).tolist()
    return Greeks(delta=delta, gamma=gamma, vega=vega, theta=theta)


def greeks_by_underlying(book: Book, rows: Iterable[int]) -> dict[str, Greeks]:
    """The option Greeks of position ``rows`` summed per underlying symbol."""
    if not book.contracts.has_options:
        return {}
    sums: dict[str, NDArray[np.float64]] = {}
    pos, contracts = book.positions, book.contracts
    for row in rows:
        ix = int(pos.instrument[row])
        if contracts.kind[ix] != OPTION:
            continue
        name = contracts.underlying_symbols[int(contracts.underlying[ix])]
        size = float(pos.qty[row]) * float(book.contract_size[ix])
        sums[name] = sums.get(name, np.zeros(4)) + size * book.options.greeks[ix]
    return {
        name: Greeks(delta=d, gamma=g, vega=v, theta=t)
        for name, (d, g, v, t) in ((n, s.tolist()) for n, s in sorted(sums.items()))
    }
