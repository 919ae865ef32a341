"""The per-group portfolio figures of one account, for events and ``evaluate``."""

from __future__ import annotations

import numpy as np

from monitor.book import Book
from monitor.engine._portfolio import PortfolioMargins, cross_rows
from monitor.scenarios import VOL_CASES, GroupMargin, HolderFigures
from monitor.schema import PortfolioGroupRisk, Reduction, ScenarioPnl, ScenarioPoint

__all__ = ["account_groups", "group_rows", "portfolio_reductions"]


def group_rows(book: Book, portfolio: PortfolioMargins, account_ix: int) -> dict[int, np.ndarray]:
    """The account's open cross position rows by group, groups in order."""
    rows = cross_rows(book, book.accounts.cross_unit[np.array([account_ix])])
    rows = np.sort(rows)
    group = portfolio.layout.group_of[book.positions.instrument[rows]]
    return {int(g): rows[group == g] for g in np.unique(group).tolist()}


def account_groups(
    book: Book, portfolio: PortfolioMargins, account_ix: int, with_matrix: bool = False
) -> tuple[PortfolioGroupRisk, ...]:
    """Each group's figures of the account (its risk matrix too with ``with_matrix``).

    Without the matrix (an event) the figures are those the cycle stored for the account,
    so a crash's thousands of events compute nothing again; with it (``evaluate``,
    ``account_risk``) the group is recomputed for the account by the numpy path."""
    out = []
    for group, rows in group_rows(book, portfolio, account_ix).items():
        priced = portfolio.priced(book, group)
        margin: GroupMargin | HolderFigures | None = None
        if not with_matrix:
            margin = portfolio.stored(account_ix, group)
        if margin is None:
            _, margin = portfolio.compute(book, group, rows, priced)
        scenarios = priced.scenarios
        worst = int(margin.worst[0])
        matrix: tuple[ScenarioPnl, ...] = ()
        if with_matrix and isinstance(margin, GroupMargin):
            matrix = tuple(
                ScenarioPnl(
                    price_move=float(move),
                    vol_case=VOL_CASES[int(case)],
                    weight=float(weight),
                    pnl=float(pnl),
                )
                for move, case, weight, pnl in zip(
                    scenarios.price_move.tolist(),
                    scenarios.vol_case.tolist(),
                    scenarios.weight.tolist(),
                    margin.pnl[0].tolist(),
                    strict=True,
                )
            )
        out.append(
            PortfolioGroupRisk(
                underlying=portfolio.layout.names[group],
                model=priced.params.model,
                loss=float(margin.loss[0]),
                futures_contingency=float(margin.futures_contingency[0]),
                option_contingency=float(margin.option_contingency[0]),
                initial_margin=float(margin.initial[0]),
                maintenance_margin=float(margin.maintenance[0]),
                standard_initial_margin=float(book.positions.figures[rows, 1].sum()),
                worst_scenario=ScenarioPoint(
                    price_move=float(scenarios.price_move[worst]),
                    vol_case=VOL_CASES[int(scenarios.vol_case[worst])],
                ),
                risk_matrix=matrix,
            )
        )
    return tuple(out)


def portfolio_reductions(book: Book, unit: int) -> tuple[Reduction, ...]:
    """The smallest proportional reduction restoring a portfolio unit to its IM.

    Closing at the mark leaves equity unchanged, and the risk-matrix IM is positively
    homogeneous in the positions (scaling every quantity by ``k`` scales every scenario
    P&L, the worst loss and each contingency by ``k``), so keeping ``k = equity / IM`` of
    every position brings IM down to equity; ``k = 0`` (close all) when equity <= 0.
    For ``pm_hybrid`` the floor's standard IM is linear in ``k`` only within a bracket,
    so there ``k`` is that first-order answer.
    """
    table = book.units
    rows = cross_rows(book, np.array([unit], dtype=np.intp))
    if rows.size == 0:
        return ()
    equity = float(table.collateral[unit] + table.upnl[unit])
    initial = float(table.initial[unit])
    kept = 0.0 if equity <= 0.0 else min(1.0, equity / initial) if initial > 0.0 else 1.0
    if kept >= 1.0:
        return ()
    pos = book.positions
    rows = rows[np.argsort(pos.instrument[rows], kind="stable")]
    return tuple(
        Reduction(
            symbol=book.symbols[int(pos.instrument[r])], qty=abs(float(pos.qty[r])) * (1.0 - kept)
        )
        for r in rows.tolist()
    )
