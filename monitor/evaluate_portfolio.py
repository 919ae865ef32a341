"""The portfolio-margin guidance ``liqmon evaluate`` adds for accounts in ``portfolio`` mode.

Per underlying group, beside the engine's figures and risk matrix:

* ``liquidation_move``: the move of the group's prices (a fraction, every instrument of
  the group by the same one, volatilities unchanged) at which the account's cross equity
  falls to its maintenance margin, the group's MM re-computed at the moved prices and the
  other groups' MM held. Scanned outward from 0 in steps of 0.5 % to +/-100 % (-99.9 %
  at most downward), then bisected to 1e-12; the root nearest 0 is given, ``null`` when
  there is none in that range, 0 when the account is at or below MM already.
* ``loss_reducers``: the positions whose closing alone lowers the group's loss, with by
  how much, largest first.
* ``full_revaluation_loss`` (``pm_greeks`` only): the loss by full Black-76 revaluation,
  so the approximation's error is ``loss - full_revaluation_loss``.
"""

from __future__ import annotations

import msgspec
import numpy as np
from numpy.typing import NDArray

from monitor.book import Book
from monitor.engine import Engine, PortfolioMargins, group_rows
from monitor.scenarios import (
    VOL_SAME,
    GroupPositions,
    InstrumentTerms,
    ScenarioSet,
    group_margin,
    price_group,
    value_changes,
)
from monitor.schema import AccountRisk, LossReducer, PortfolioGroupRisk

__all__ = ["with_portfolio_guidance"]

_STEP = 0.005
_BISECTIONS = 60
_LOWEST = -0.999


def with_portfolio_guidance(engine: Engine, risk: AccountRisk) -> AccountRisk:
    """``risk`` with each portfolio group's liquidation move, loss reducers and error."""
    if not risk.portfolio:
        return risk
    book, portfolio = engine.book, engine.portfolio
    ix = book.account_index[risk.account]
    unit = int(book.accounts.cross_unit[ix])
    equity = float(book.units.collateral[unit] + book.units.upnl[unit])
    maintenance = float(book.units.maintenance[unit])
    by_group = group_rows(book, portfolio, ix)
    groups = []
    for (group, rows), figures in zip(by_group.items(), risk.portfolio, strict=True):
        # Only the instruments the account holds: the scan reprices them hundreds of times.
        positions = _positions(book, portfolio, rows)
        held, col = np.unique(positions.col, return_inverse=True)
        terms = portfolio.layout.terms(book, group).take(held)
        positions = positions._replace(col=col.reshape(-1))
        other_mm = maintenance - figures.maintenance_margin
        groups.append(
            msgspec.structs.replace(
                figures,
                liquidation_move=_liquidation_move(
                    portfolio, group, terms, positions, equity, other_mm
                ),
                loss_reducers=_reducers(book, portfolio, group, rows, figures),
                full_revaluation_loss=_full_loss(portfolio, group, terms, positions, figures),
            )
        )
    return msgspec.structs.replace(risk, portfolio=tuple(groups))


def _positions(book: Book, portfolio: PortfolioMargins, rows: NDArray[np.intp]) -> GroupPositions:
    pos = book.positions
    return GroupPositions(
        np.zeros(rows.size, dtype=np.intp),
        portfolio.layout.col[pos.instrument[rows]],
        pos.qty[rows],
        1,
    )


def _moved(terms: InstrumentTerms, move: float) -> InstrumentTerms:
    return terms._replace(price=terms.price * (1.0 + move))


def _liquidation_move(
    portfolio: PortfolioMargins,
    group: int,
    terms: InstrumentTerms,
    positions: GroupPositions,
    equity: float,
    other_mm: float,
) -> float | None:
    params = portfolio.layout.params[group]

    def surplus(moves: NDArray[np.float64]) -> NDArray[np.float64]:
        scenarios = ScenarioSet(
            moves, np.full(moves.size, VOL_SAME, dtype=np.int8), np.ones(moves.size)
        )
        pnl = positions.qty @ value_changes(terms, scenarios, params)[positions.col]
        mm = np.array(
            [
                float(group_margin(price_group(_moved(terms, m), params), positions).maintenance[0])
                for m in moves.tolist()
            ]
        )
        result: NDArray[np.float64] = equity + pnl - other_mm - mm
        return result

    if surplus(np.zeros(1))[0] <= 0.0:
        return 0.0
    up = np.arange(_STEP, 1.0 + _STEP / 2, _STEP)
    down = np.maximum(-up, _LOWEST)
    roots = []
    for grid in (up, down):
        values = surplus(grid)
        below = np.flatnonzero(values <= 0.0)
        if below.size == 0:
            continue
        k = int(below[0])
        low, high = (0.0 if k == 0 else float(grid[k - 1])), float(grid[k])
        for _ in range(_BISECTIONS):
            middle = 0.5 * (low + high)
            if surplus(np.array([middle]))[0] <= 0.0:
                high = middle
            else:
                low = middle
        roots.append(high)
    return min(roots, key=abs) if roots else None


def _reducers(
    book: Book,
    portfolio: PortfolioMargins,
    group: int,
    rows: NDArray[np.intp],
    figures: PortfolioGroupRisk,
) -> tuple[LossReducer, ...]:
    """Loss of the group without each position in turn: one row per left-out position."""
    n = rows.size
    if n < 1:
        return ()
    pos = book.positions
    holder = np.repeat(np.arange(n), n)
    kept = np.tile(np.arange(n), n)
    keep = holder != kept
    col = portfolio.layout.col[pos.instrument[rows]]
    without = GroupPositions(holder[keep], col[kept[keep]], pos.qty[rows][kept[keep]], n)
    loss = group_margin(portfolio.priced(book, group), without).loss
    reduction = figures.loss - loss
    order = np.argsort(-reduction, kind="stable")
    return tuple(
        LossReducer(
            symbol=book.symbols[int(pos.instrument[rows[k]])],
            qty=float(pos.qty[rows[k]]),
            loss_reduction=float(reduction[k]),
        )
        for k in order.tolist()
        if reduction[k] > 0.0
    )


def _full_loss(
    portfolio: PortfolioMargins,
    group: int,
    terms: InstrumentTerms,
    positions: GroupPositions,
    figures: PortfolioGroupRisk,
) -> float | None:
    params = portfolio.layout.params[group]
    if params.model != "pm_greeks":
        return None
    full = msgspec.structs.replace(params, model="pm_risk_matrix")
    return float(group_margin(price_group(terms, full), positions).loss[0])
