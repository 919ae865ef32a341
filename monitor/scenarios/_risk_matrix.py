"""Risk-matrix portfolio margin of one underlying group, vectorised over accounts.

For a group (an underlying, its options and the future of that symbol) priced once
(:func:`price_group`), every account holding it gets, by one sparse product and a few
bincounts (:func:`group_margin`):

* ``pnl``: P&L per scenario (the risk matrix), ``loss = max(0, -min weight x pnl)``;
* contingencies: ``futures_contingency x |net futures delta x price|`` and
  ``option_contingency`` per net short contract per strike and expiry (coin, or that
  fraction of the underlying for linear options);
* ``MM = loss + contingencies``; ``IM = MM x im_factor``, and for ``pm_hybrid``
  ``IM = max(IM, hybrid_floor x standard IM)``.

Sources: Deribit, "Portfolio Margin" (knowledge base: risk matrix, extended table,
futures and options contingencies, IM = 1.25 x MM... as ``im_factor``); CME Group,
"CME SPAN: Standard Portfolio Analysis of Risk" (scan risk as the largest scenario loss,
extreme moves at a fraction). Rows are (account, group) pairs: an account's IM and MM
are sums over its groups, with no offset between underlyings.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import scipy.sparse
from numpy.typing import NDArray

from monitor.models import OPTION
from monitor.scenarios._grid import ScenarioSet, risk_matrix_scenarios
from monitor.scenarios._pnl import scenario_pnl, worst_loss
from monitor.scenarios._values import InstrumentTerms, contingency_units, value_changes
from monitor.schema import PortfolioMarginParams

__all__ = [
    "GroupMargin",
    "GroupPositions",
    "PricedGroup",
    "group_margin",
    "price_group",
    "strike_keys",
]

Array = NDArray[np.float64]


class PricedGroup(NamedTuple):
    """One group's instruments priced on its scenario set (rows = the group's instruments)."""

    params: PortfolioMarginParams
    scenarios: ScenarioSet
    values: Array  # instruments x scenarios, per contract, valuation asset (the model's)
    exposure: Array  # futures delta value per contract (see contingency_units)
    short_unit: Array  # option contingency per short contract
    strike_key: NDArray[np.integer[Any]]  # dense id of (expiry, strike) for options, -1 otherwise


class GroupPositions(NamedTuple):
    """Positions in a group as coordinates: ``row`` (the holder, 0..rows-1), ``col`` (the
    instrument's row in the group), ``qty`` in contracts."""

    row: NDArray[np.integer[Any]]
    col: NDArray[np.integer[Any]]
    qty: Array
    rows: int


class GroupMargin(NamedTuple):
    """Per holder of one group (row): scenario P&L and the margin figures."""

    pnl: Array  # rows x scenarios
    loss: Array
    worst: NDArray[np.intp]  # the scenario of the loss
    futures_contingency: Array
    option_contingency: Array
    maintenance: Array
    initial: Array


def price_group(
    terms: InstrumentTerms,
    params: PortfolioMarginParams,
    strike_key: NDArray[np.integer[Any]] | None = None,
) -> PricedGroup:
    """Scenario values and contingency units of a group's instruments, once.

    ``strike_key``: the instruments' :func:`strike_keys`, when the caller keeps them."""
    scenarios = risk_matrix_scenarios(params)
    values = value_changes(terms, scenarios, params, greeks=params.model == "pm_greeks")
    exposure, short_unit = contingency_units(terms, params)
    keys = strike_keys(terms) if strike_key is None else strike_key
    return PricedGroup(params, scenarios, values, exposure, short_unit, keys)


def strike_keys(terms: InstrumentTerms) -> NDArray[np.intp]:
    """A dense id per distinct (expiry, strike) of the group's options; -1 for futures."""
    key = np.full(terms.kind.shape[0], -1, dtype=np.intp)
    option = np.flatnonzero(terms.kind == OPTION)
    if option.size:
        pairs = np.column_stack((terms.expiry_ms[option], terms.strike[option]))
        _, inverse = np.unique(pairs, axis=0, return_inverse=True)
        key[option] = inverse.reshape(-1)
    return key


def group_margin(
    priced: PricedGroup, positions: GroupPositions, standard_initial: Array | None = None
) -> GroupMargin:
    """The risk matrix, loss, contingencies, MM and IM of every holder of the group.

    ``standard_initial`` (per row) is the rows' standard IM, used by ``pm_hybrid`` only.
    """
    rows, col, qty = positions.rows, positions.col, positions.qty
    matrix = _quantities(positions, priced.values.shape[0])
    pnl = scenario_pnl(matrix, priced.values)
    loss, worst = worst_loss(pnl, priced.scenarios.weight)
    params = priced.params
    futures_delta = np.bincount(
        positions.row, weights=qty * priced.exposure.take(col), minlength=rows
    )
    futures = params.futures_contingency * np.abs(futures_delta)
    options = _option_contingency(priced, positions, matrix)
    maintenance = loss + futures + options
    initial = maintenance * params.im_factor
    if params.model == "pm_hybrid" and standard_initial is not None:
        initial = np.maximum(initial, params.hybrid_floor * standard_initial)
    return GroupMargin(pnl, loss, worst, futures, options, maintenance, initial)


def _quantities(positions: GroupPositions, instruments: int) -> scipy.sparse.csc_array:
    """Holders x instruments quantities. Positions given instrument by instrument (a
    tick's holder lists) make the compressed-column form directly, with no sort."""
    col = positions.col
    if col.size > 1 and not bool((col[1:] >= col[:-1]).all()):
        order = np.argsort(col, kind="stable")
        positions = GroupPositions(
            positions.row[order], col[order], positions.qty[order], positions.rows
        )
        col = positions.col
    indptr = np.searchsorted(col, np.arange(instruments + 1))
    return scipy.sparse.csc_array(
        (positions.qty, positions.row, indptr), shape=(positions.rows, instruments)
    )


def _option_contingency(
    priced: PricedGroup, positions: GroupPositions, matrix: scipy.sparse.csc_array
) -> Array:
    """``sum over (expiry, strike) of max(0, -net contracts) x charge`` per row: the net
    per holder and (expiry, strike) is the sparse product of the quantities with the
    instruments' (expiry, strike) membership weighted by their charge."""
    option = np.flatnonzero(priced.strike_key >= 0)
    if option.size == 0:
        return np.zeros(positions.rows)
    keys = int(priced.strike_key.max()) + 1
    membership = scipy.sparse.csr_array(
        (priced.short_unit[option], (option, priced.strike_key[option])),
        shape=(priced.strike_key.size, keys),
    )
    net = scipy.sparse.csr_array(matrix @ membership)
    charge = np.maximum(-net.data, 0.0)
    row = np.repeat(np.arange(positions.rows), np.diff(net.indptr))
    per_row = np.bincount(row, weights=charge, minlength=positions.rows)
    return np.asarray(per_row, dtype=np.float64)
