"""What liqmon publishes per account: margin events and the risk figures they carry."""

from __future__ import annotations

from typing import Literal

import msgspec

from monitor.schema._common import AccountState, MarginEventType, Trigger
from monitor.schema._instruments import PortfolioModel

__all__ = [
    "Greeks",
    "LossReducer",
    "MarginEvent",
    "MarginParameters",
    "PortfolioGroupRisk",
    "PositionRisk",
    "Reduction",
    "ScenarioPnl",
    "ScenarioPoint",
]


class Greeks(msgspec.Struct, frozen=True, kw_only=True):
    """Black-76 sensitivities of a position or a sum of positions, in base units and
    the quote currency: ``delta`` (base units), ``gamma`` (per unit of underlying price),
    ``vega`` (per volatility point, 0.01), ``theta`` (per calendar day)."""

    delta: float
    gamma: float
    vega: float
    theta: float


class PositionRisk(msgspec.Struct, frozen=True, kw_only=True):
    """One position's numbers at the moment of an event or an evaluation.

    For an option, ``mark_price`` is its value per base unit in the settle asset,
    ``notional`` its market value (what it adds to equity), ``mark_iv`` the volatility
    it is valued at and ``greeks`` the position's sensitivities.
    """

    symbol: str
    qty: float
    entry_price: float
    mark_price: float
    notional: float
    unrealized_pnl: float
    initial_margin: float
    maintenance_margin: float
    liquidation_price: float | None
    bankruptcy_price: float | None
    isolated_margin: float | None = None
    state: AccountState | None = None
    margin_ratio: float | None = None
    mark_iv: float | None = None
    greeks: Greeks | None = None


class Reduction(msgspec.Struct, frozen=True, kw_only=True):
    """Reduce ``symbol`` by ``qty`` (a positive amount, towards zero)."""

    symbol: str
    qty: float


class ScenarioPoint(msgspec.Struct, frozen=True, kw_only=True):
    """A risk-matrix scenario: the underlying's ``price_move`` (a fraction, -0.16 = 16 %
    down) and the volatility case (``up``, ``same`` or ``down``)."""

    price_move: float
    vol_case: Literal["up", "same", "down"]


class ScenarioPnl(msgspec.Struct, frozen=True, kw_only=True):
    """One cell of a risk matrix: the group's P&L in a scenario and the weight its loss
    counts at (1, or ``extreme_fraction`` in the extended table)."""

    price_move: float
    vol_case: Literal["up", "same", "down"]
    weight: float
    pnl: float


class LossReducer(msgspec.Struct, frozen=True, kw_only=True):
    """Closing ``symbol`` (``qty`` contracts held) alone lowers the group's loss by
    ``loss_reduction``."""

    symbol: str
    qty: float
    loss_reduction: float


class PortfolioGroupRisk(msgspec.Struct, frozen=True, kw_only=True):
    """Portfolio margin of one underlying group of an account (``monitor.scenarios``).

    ``loss`` is the worst weighted scenario loss, reached in ``worst_scenario``;
    ``maintenance_margin = loss + futures_contingency + option_contingency`` and
    ``initial_margin = im_factor x MM`` (``pm_hybrid``: at least ``hybrid_floor x
    standard_initial_margin``, the group's IM on the standard models). ``evaluate`` adds
    the whole ``risk_matrix``, the ``liquidation_move`` (the price move of the underlying,
    a fraction, at which the account's equity falls to its MM; null when none within
    +/-100 %), the ``loss_reducers`` and, for ``pm_greeks``, ``full_revaluation_loss``
    (the loss by full Black-76 revaluation: the approximation's error is the difference).
    """

    underlying: str
    model: PortfolioModel
    loss: float
    futures_contingency: float
    option_contingency: float
    initial_margin: float
    maintenance_margin: float
    standard_initial_margin: float
    worst_scenario: ScenarioPoint
    risk_matrix: tuple[ScenarioPnl, ...] = ()
    liquidation_move: float | None = None
    loss_reducers: tuple[LossReducer, ...] = ()
    full_revaluation_loss: float | None = None


class MarginEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A margin-state transition of one account (topic ``margin-events``, key = account).

    ``event_id`` is deterministic: the same inputs give the same id, so a consumer
    can drop duplicates after a restart. ``margin_ratio`` is MM / equity, null
    whenever equity <= 0. For a liquidation, ``reductions`` is the smallest reduction
    that restores the account to its initial margin at current prices and
    ``shortfall`` is how far equity is below maintenance margin. ``symbol`` is set
    when the event concerns one isolated position rather than the cross account.
    ``positions_omitted`` counts positions left out of ``positions`` so the event fits a
    Kafka record (those with the largest maintenance margin are kept). ``sequence``
    numbers the unit's transitions (1, 2, ...); ``event_id`` derives from the account,
    the unit, ``sequence`` and ``state``, so the same transition keeps its id whatever
    tick or restart it was judged from. ``collapsed`` is true when the event covers more
    than one step: it skips a level (the levels between were passed inside one cycle's
    conflated ticks, or while nobody watched), or the unit was judged afresh after a
    restart or rebalance, going from the last published state straight to the current one.
    ``greeks`` sums the unit's option Greeks per underlying (empty without options).
    ``portfolio`` gives the per-group figures of an account on portfolio margin (its IM
    and MM are their sums); empty otherwise. ``adl_quantile`` is the account's highest
    auto-deleveraging rank quantile over its positions (0 last in the queue, 1 first;
    docs/solvency.md) as of the service's last solvency report; null before one.
    """

    event_id: str
    type: MarginEventType
    account: str
    state: AccountState
    previous_state: AccountState
    equity: float
    initial_margin: float
    maintenance_margin: float
    margin_ratio: float | None
    trigger: Trigger
    trigger_ts: int
    detected_ts: int
    positions: tuple[PositionRisk, ...] = ()
    reductions: tuple[Reduction, ...] = ()
    shortfall: float = 0.0
    symbol: str | None = None
    positions_omitted: int = 0
    sequence: int = 0
    collapsed: bool = False
    greeks: dict[str, Greeks] = {}
    portfolio: tuple[PortfolioGroupRisk, ...] = ()
    adl_quantile: float | None = None


class MarginParameters(
    msgspec.Struct, tag="margin_parameters", tag_field="type", frozen=True, kw_only=True
):
    """A change of dynamic margin's effective rate scale for one underlying (topic
    ``margin-events``, key ``parameters:<underlying>``, header ``type=margin_parameters``).

    From ``ts`` (event time of the bar close that caused it) the margin rates of
    ``instruments`` are their configured rates times ``scale`` (was ``previous_scale``).
    ``volatility`` is the annualised EWMA volatility then; ``raw_scale`` is
    ``clip(volatility / reference_vol, floor, cap)``; ``stressed_scale`` the highest raw
    scale seen (the stressed period); ``target_scale`` the anti-procyclical blend of the two;
    ``limited_by`` names what held ``scale`` off ``raw_scale`` (``floor``, ``cap``,
    ``stressed_weight``, ``max_change``, ``lead_time``). ``announced_ts`` is when an increase
    held back by the lead time was first decided (equal to ``ts`` otherwise). Units holding
    ``instruments`` are judged again at once; their events follow this one.
    """

    event_id: str
    underlying: str
    instruments: tuple[str, ...]
    scale: float
    previous_scale: float
    raw_scale: float
    stressed_scale: float
    target_scale: float
    volatility: float
    reference_vol: float
    limited_by: tuple[str, ...] = ()
    announced_ts: int
    ts: int
    detected_ts: int
