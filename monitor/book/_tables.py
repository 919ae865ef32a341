"""The account and margin-unit tables of the book.

A *margin unit* is what a margin state belongs to: an account's cross unit (its
wallet and every cross position), or one isolated position with the margin
allocated to it. Every account has a cross unit; an isolated unit is created the
first time a position of the account opens in isolated mode and is reused after.
"""

from __future__ import annotations

from typing import ClassVar, Final

import numpy as np
from numpy.typing import NDArray

from monitor.book._columns import ID, Columns, Ids

__all__ = [
    "COLLATERAL",
    "CROSS",
    "GROSS",
    "INITIAL",
    "ISOLATED",
    "MAINTENANCE",
    "PORTFOLIO",
    "UPNL",
    "AccountTable",
    "UnitTable",
]

CROSS: Final = 0
ISOLATED: Final = 1
# Cross, with the cross unit margined by portfolio (risk-matrix) margin: monitor.scenarios.
PORTFOLIO: Final = 2
# Columns of UnitTable.figures.
COLLATERAL: Final = 0
UPNL: Final = 1
INITIAL: Final = 2
MAINTENANCE: Final = 3
GROSS: Final = 4


class AccountTable(Columns):
    """Accounts by dense id: margin mode for new positions, cross unit, wallet per asset,
    and the account's newest isolated unit (-1: none; the others follow
    ``UnitTable.previous_isolated``)."""

    SPEC: ClassVar = {
        "mode": (np.int8, CROSS, 0),
        "cross_unit": (ID, -1, 0),
        "balance": (np.float64, 0.0, 1),  # [accounts, assets]; width set by the book
        "last_isolated": (ID, -1, 0),
    }

    mode: NDArray[np.int8]
    cross_unit: Ids
    balance: NDArray[np.float64]
    last_isolated: Ids


class UnitTable(Columns):
    """Margin units by dense id, with their cached figures (valuation asset) and state.

    ``row`` is -1 for a cross unit and the position row for an isolated one.
    ``previous_isolated`` is the account's isolated unit created before this one (-1: this
    is its first): with ``AccountTable.last_isolated``, each account's isolated units in
    4 bytes a unit and 4 an account, where a dict of lists took about 160 bytes an account.
    ``transitions`` counts the unit's state transitions so far: the sequence number of
    its last event, which (with the account, the unit and the new state) is the event's
    identity, so the same transition re-judged after any crash carries the same id.
    ``collateral`` is the wallet value after haircuts (cross) or the allocated margin
    (isolated); ``gross`` is the sum of absolute unrealised PnL, the scale that float
    rounding of the equity sum is measured against.

    ``unbanded`` marks a unit judged but given no price band (in liquidation or
    bankrupt, portfolio-margined, or within rounding of a threshold: see
    ``monitor.engine._bands``): a tick judges it whenever one of its marks moves, found by
    this flag rather than through its rows, whose bands are left wide open so that they
    never keep a tick from skipping their holder blocks. ``unbanded_count`` is how many
    are set, so a book with none pays nothing for them, and ``unbanded_ids`` their ids
    (None until read again after a flag changed), so a tick does not scan a million flags.
    """

    SPEC: ClassVar = {
        "account": (ID, -1, 0),
        "row": (ID, -1, 0),
        "state": (np.int8, 0, 0),
        "transitions": (np.int64, 0, 0),
        # collateral, upnl, initial, maintenance, gross: read together for scattered units
        "figures": (np.float64, 0.0, 5),
        "open_positions": (ID, 0, 0),
        "head": (ID, -1, 0),
        "previous_isolated": (ID, -1, 0),
        "unbanded": (np.bool_, False, 0),
    }

    account: Ids
    row: Ids
    state: NDArray[np.int8]
    transitions: NDArray[np.int64]
    figures: NDArray[np.float64]
    open_positions: Ids
    head: Ids
    previous_isolated: Ids
    unbanded: NDArray[np.bool_]

    def __init__(self, capacity: int = 64, widths: dict[str, int] | None = None) -> None:
        super().__init__(capacity, widths)
        self.unbanded_count = 0
        self.unbanded_ids: NDArray[np.intp] | None = None

    @property
    def collateral(self) -> NDArray[np.float64]:
        """Collateral value per unit (a view of ``figures``)."""
        return self.figures[:, COLLATERAL]

    @property
    def upnl(self) -> NDArray[np.float64]:
        """Unrealised PnL per unit (a view of ``figures``)."""
        return self.figures[:, UPNL]

    @property
    def initial(self) -> NDArray[np.float64]:
        """Initial margin per unit (a view of ``figures``)."""
        return self.figures[:, INITIAL]

    @property
    def maintenance(self) -> NDArray[np.float64]:
        """Maintenance margin per unit (a view of ``figures``)."""
        return self.figures[:, MAINTENANCE]

    @property
    def gross(self) -> NDArray[np.float64]:
        """Sum of absolute unrealised PnL per unit (a view of ``figures``)."""
        return self.figures[:, GROSS]

    @property
    def equity(self) -> NDArray[np.float64]:
        """Equity per unit: collateral value plus unrealised PnL."""
        n = self.size
        return self.collateral[:n] + self.upnl[:n]
