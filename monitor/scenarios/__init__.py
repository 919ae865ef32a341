"""The one scenario engine of every risk-based model (DESIGN.md).

A scenario set is a list of (price move, volatility case) pairs with a weight each; the
value change of one contract of each instrument in each scenario is computed once,
vectorised (Black-76 full revaluation or the Greeks approximation for options, linear or
inverse arithmetic for futures); an account's P&L per scenario is the sparse product of
its quantities and those changes; a requirement is a statistic of that vector (the
worst weighted loss here, VaR/ES in :mod:`monitor.risk`). Pure: no I/O, no clock.
"""

from monitor.scenarios._fused import HolderFigures, holder_figures, holder_figures_reference
from monitor.scenarios._grid import (
    VOL_CASES,
    VOL_DOWN,
    VOL_SAME,
    VOL_UP,
    ScenarioSet,
    params_problem,
    risk_matrix_scenarios,
    shocked_vols,
)
from monitor.scenarios._pnl import PositionMatrix, scenario_pnl, worst_loss
from monitor.scenarios._risk_matrix import (
    GroupMargin,
    GroupPositions,
    PricedGroup,
    group_margin,
    price_group,
    strike_keys,
)
from monitor.scenarios._values import InstrumentTerms, contingency_units, value_changes

__all__ = [
    "VOL_CASES",
    "VOL_DOWN",
    "VOL_SAME",
    "VOL_UP",
    "GroupMargin",
    "GroupPositions",
    "HolderFigures",
    "InstrumentTerms",
    "PositionMatrix",
    "PricedGroup",
    "ScenarioSet",
    "contingency_units",
    "group_margin",
    "holder_figures",
    "holder_figures_reference",
    "params_problem",
    "price_group",
    "risk_matrix_scenarios",
    "scenario_pnl",
    "shocked_vols",
    "strike_keys",
    "value_changes",
    "worst_loss",
]
