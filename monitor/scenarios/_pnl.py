"""Scenario P&L of accounts: the sparse product of quantities and value changes."""

from __future__ import annotations

import numpy as np
import scipy.sparse
from numpy.typing import NDArray

__all__ = ["PositionMatrix", "scenario_pnl", "worst_loss"]

# A sparse accounts x instruments matrix of quantities (contracts).
PositionMatrix = scipy.sparse.csr_array


def scenario_pnl(
    positions: PositionMatrix | scipy.sparse.csc_array | NDArray[np.float64],
    value_change: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Every account's P&L per scenario: ``positions @ value_change``.

    ``positions`` is accounts x instruments (quantities in contracts, sparse or dense),
    ``value_change`` instruments x scenarios (the value change of one contract in each
    scenario, from any pricer). The instrument is priced once per scenario, never per
    position: the cost is O(instruments x scenarios + positions x scenarios).
    """
    pnl = positions @ value_change
    return np.asarray(pnl, dtype=np.float64)


def worst_loss(
    pnl: NDArray[np.float64], weight: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """(loss, worst scenario) per row of ``pnl`` (rows x scenarios).

    ``loss = max(0, -min_s weight_s x pnl_s)``: a scenario of weight 0.2 counts a fifth
    of its loss (SPAN's extreme moves, Deribit's extended table). The worst scenario is
    the first one reaching the minimum.
    """
    weighted = pnl * weight
    worst = np.argmin(weighted, axis=1) if pnl.shape[1] else np.zeros(pnl.shape[0], np.intp)
    low = np.take_along_axis(weighted, worst[:, None], axis=1)[:, 0] if pnl.shape[1] else 0.0
    loss: NDArray[np.float64] = np.maximum(-low, 0.0)
    return loss, np.asarray(worst, dtype=np.intp)
