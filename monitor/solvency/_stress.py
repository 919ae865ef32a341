"""Book-wide stress: every margin unit's equity after each named scenario, in one product.

For scenarios ``s`` and instruments ``i``, the value change of one contract ``V[i, s]``
comes from the scenario engine (:func:`monitor.scenarios.value_changes`: linear and
inverse arithmetic, Black-76 full revaluation of options at the shocked underlying and
volatility), priced once per underlying. A unit's scenario P&L is the sparse product
``Q @ V`` of its quantities; its shocked equity ``E' = E + Q @ V``. Per scenario:

* bad debt ``sum over units of max(0, -E')`` (an isolated position loses at most its
  margin, so units, not accounts, are the bankruptcy boundary, as in the engine);
* a unit is bankrupt when ``E'`` is below zero by more than the engine's tolerance
  (:func:`monitor.states.slack`), so every unit called bankrupt here is bankrupt in the
  engine at those prices;
* the largest contributors (accounts), the bad debt per underlying (each unit's debt
  split over its positions by maintenance margin, as :mod:`monitor.engine._exposure`),
  and the insurance fund's coverage ``fund / bad debt`` (the debt of a unit with no
  open position, a negative wallet, belongs to no underlying).

Each scenario's figures are independent of the others, so the book is stressed one
scenario per pass (``SCENARIOS_PER_PASS``) and each pass reduced to its scenarios'
results before the next: the memory is units x one scenario, not units and accounts
x every scenario (at a million units and 31 scenarios, about 1.3 GB at once before).
The worst scenario is stressed again alone for Cover-2 and the ADL queues.

Cover-2 (CPMI-IOSCO PFMI principle 4: resources to cover the default of the two
participants with the largest exposure in extreme but plausible conditions) is the bad
debt of the two largest account groups in the worst scenario. A wallet's collateral in
an asset priced by an underlying (BTC collateral, priced by the BTC tick or a BTC
instrument) moves with that underlying: its value after haircut changes by the same
fraction. Other collateral, and settle-asset amounts, stay at today's value, as the
scenario engine does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
from numpy.typing import NDArray

from monitor.scenarios import InstrumentTerms, ScenarioSet, value_changes
from monitor.schema import (
    AdlQueue,
    PortfolioMarginParams,
    SolvencyReport,
    StressContributor,
    StressResult,
    StressScenario,
)
from monitor.solvency._adl import adl_queues
from monitor.solvency._gate import OPEN, CycleGate
from monitor.solvency._kernels import stress_units
from monitor.solvency._report_kernels import debt_by_base, largest
from monitor.solvency._state import BookState, StressFigures
from monitor.states import REL_TOL

__all__ = ["SCENARIOS_PER_PASS", "scenario_values", "stress_report", "stress_scenarios"]

Array = NDArray[np.float64]
_VOL_CODES = {"up": 0, "same": 1, "down": 2}


def scenario_values(
    state: BookState, scenarios: Sequence[StressScenario], params: PortfolioMarginParams
) -> tuple[Array, Array]:
    """(moves, value changes), instruments x scenarios, each underlying priced once."""
    n, s = state.instrument_base.shape[0], len(scenarios)
    moves = np.empty((n, s))
    values = np.zeros((n, s))
    vol_case = np.array([_VOL_CODES[sc.vol] for sc in scenarios], dtype=np.int8)
    for k, base in enumerate(state.bases):
        members = np.flatnonzero(state.instrument_base == k)
        move = np.array([sc.moves.get(base, sc.default_move) for sc in scenarios])
        moves[members] = move
        terms = InstrumentTerms._make(column[members] for column in state.terms)
        scenario_set = ScenarioSet(move, vol_case, np.ones(s))
        values[members] = value_changes(terms, scenario_set, params)
    return moves, values


# Scenarios stressed per pass: the figures of a pass are units (and accounts) x this
# many (equity, debt: 8 MB each per scenario at a million units), not x every
# scenario. Measured when it was chosen, at 1M accounts / 3M positions, 10 scenarios
# (before the stress kept less per position: docs/solvency.md): one a pass peaks 122 MiB
# above the book in 0.88 s, four a pass 374 MiB in 0.69-0.76 s (each while the previous
# pass's figures were still held: 93 MiB, against 154, on the end-to-end bench's book).
SCENARIOS_PER_PASS = 1


def stress_scenarios(
    state: BookState,
    moves: Array,
    values: Array,
    asset_moves: Array,
    pick: NDArray[np.intp],
    *,
    gate: CycleGate = OPEN,
    keep_equity: bool = True,
) -> StressFigures:
    """Every unit's shocked equity under the scenarios ``pick`` (columns of ``moves``,
    ``values`` and ``asset_moves``), per account the debt and the bankrupt units, and the
    debt split over the underlyings by the positions' shares of their unit (fused
    kernels, no GIL). Without ``keep_equity`` the figures hold no shocked equity (None):
    a report's pass needs only the debts, the ADL queues need it."""
    moves, values = np.ascontiguousarray(moves[:, pick]), np.ascontiguousarray(values[:, pick])
    equity, bankrupt, debt, account_debt, account_bankrupt = stress_units(
        state.row_unit,
        state.row_instrument,
        state.row_qty,
        values,
        state.unit_equity,
        state.unit_scale,
        _exposure(state),
        np.ascontiguousarray(asset_moves[:, pick]),
        state.unit_account,
        len(state.accounts),
        REL_TOL,
        gate=gate,
        keep_equity=keep_equity,
    )
    by_base = debt_by_base(
        state.row_unit,
        state.row_instrument,
        state.instrument_base,
        state.row_share,
        debt,
        len(state.bases),
        gate=gate,
    )
    return StressFigures(
        moves, values, equity, bankrupt, debt, account_debt, account_bankrupt, by_base
    )


_NO_FIGURES: Final = np.zeros((0, 1))
_NO_COUNTS: Final = np.zeros((0, 1), dtype=np.int32)


def _asset_moves(state: BookState, scenarios: Sequence[StressScenario]) -> Array:
    """Collateral assets x scenarios: the move of each asset's underlying."""
    moves = np.zeros((len(state.exposure_assets), len(scenarios)))
    for k, b in enumerate(state.exposure_base.tolist()):
        base = state.bases[b]
        moves[k] = [sc.moves.get(base, sc.default_move) for sc in scenarios]
    return moves


def _exposure(state: BookState) -> Array:
    """Units x moving collateral assets (zero columns when there are none)."""
    exposure = state.unit_exposure
    if exposure.shape[0] != state.units:
        return np.zeros((state.units, len(state.exposure_assets)))
    return exposure


def stress_report(
    state: BookState,
    scenarios: Sequence[StressScenario],
    params: PortfolioMarginParams,
    *,
    fund: float,
    ts: int,
    group_of: NDArray[np.intp] | None = None,
    group_names: Sequence[str] | None = None,
    top: int = 10,
    report_accounts: int = 100,
    queue_length: int = 20,
    gate: CycleGate = OPEN,
) -> SolvencyReport:
    """The solvency report of ``state`` under ``scenarios`` with an insurance fund ``fund``.

    ``group_of`` maps each account (dense id) to its Cover-2 group (``group_names``);
    by default every account is its own group.
    """
    moves, values = scenario_values(state, scenarios, params)
    asset_moves = _asset_moves(state, scenarios)
    n_scen = len(scenarios)
    totals = np.zeros(n_scen)
    results: list[StressResult] = []
    # A few scenarios per pass (each scenario's figures are independent of the others):
    # per pass units x passed scenarios, never units or accounts x every scenario.
    for first in range(0, n_scen, SCENARIOS_PER_PASS):
        pick = np.arange(first, min(first + SCENARIOS_PER_PASS, n_scen), dtype=np.intp)
        part = stress_scenarios(
            state, moves, values, asset_moves, pick, gate=gate, keep_equity=False
        )
        totals[pick] = part.debt.sum(axis=0)
        for j, k in enumerate(pick.tolist()):
            results.append(
                _result(
                    gate,
                    state,
                    part.account_debt[:, j],
                    part.account_bankrupt[:, j],
                    part.by_base[:, j],
                    float(totals[k]),
                    scenarios[k].name,
                    fund,
                    top,
                    report_accounts,
                )
            )
        del part  # before the next pass allocates its own: one pass's figures at a time
    worst = int(np.argmax(totals)) if scenarios and float(totals.max()) > 0.0 else None
    cover2, groups = 0.0, tuple[str, ...]()
    adl: tuple[AdlQueue, ...] = ()
    if worst is not None:
        # The worst scenario's figures per unit and account, stressed again alone.
        one = np.array([worst], dtype=np.intp)
        alone = stress_scenarios(state, moves, values, asset_moves, one, gate=gate)
        cover2, groups = _cover2(state, alone.account_debt[:, 0], group_of, group_names)
        # The queues read the units' figures only: the accounts' go first (12 MB at 1M).
        alone = alone._replace(account_debt=_NO_FIGURES, account_bankrupt=_NO_COUNTS)
        if float(totals[worst]) > fund:
            adl = adl_queues(state, alone, 0, fund, queue_length, gate=gate)
    return SolvencyReport(
        ts=ts,
        accounts=len(state.accounts),
        units=state.units,
        insurance_fund=fund,
        scenarios=tuple(results),
        worst_scenario=scenarios[worst].name if worst is not None else None,
        cover2=cover2,
        cover2_groups=groups,
        cover2_coverage=fund / cover2 if cover2 > 0.0 else None,
        adl_candidates=adl,
    )


def _result(
    gate: CycleGate,
    state: BookState,
    debt: Array,
    bankrupt_count: NDArray[np.int32],
    by_base: Array,
    total: float,
    name: str,
    fund: float,
    top: int,
    report_accounts: int,
) -> StressResult:
    """One scenario's result from its per-account debt and bankrupt unit counts."""
    gate.step_aside()
    bankrupt = bankrupt_count > 0
    n_bankrupt = int(np.count_nonzero(bankrupt))
    order = largest(debt, report_accounts, bankrupt_count).tolist()
    if len(order) < min(n_bankrupt, report_accounts):  # bankrupt with no debt to show
        rest = np.flatnonzero(bankrupt & ~(debt > 0.0))
        order += rest[: report_accounts - len(order)].tolist()
    return StressResult(
        scenario=name,
        bad_debt=total,
        bankrupt_accounts=n_bankrupt,
        coverage=fund / total if total > 0.0 else None,
        largest=tuple(
            StressContributor(account=state.accounts[a], bad_debt=float(debt[a]))
            for a in largest(debt, top).tolist()
        ),
        bankrupt=tuple(state.accounts[a] for a in order),
        bad_debt_by_underlying={b: float(by_base[k]) for k, b in enumerate(state.bases)},
    )


def _cover2(
    state: BookState,
    debt: Array,
    group_of: NDArray[np.intp] | None,
    group_names: Sequence[str] | None,
) -> tuple[float, tuple[str, ...]]:
    """Bad debt of the two largest groups (by their bad debt) and their names."""
    if group_of is None or group_names is None:
        group_debt, names = debt, state.accounts
    else:
        group_debt = np.asarray(
            np.bincount(group_of, weights=debt, minlength=len(group_names)), dtype=np.float64
        )
        names = tuple(group_names)
    two = largest(group_debt, 2).tolist()
    return float(group_debt[two].sum()), tuple(names[g] for g in two)
