"""Every message liqmon reads or writes, defined once as a msgspec Struct.

Input messages hold only scalars, so they are declared ``gc=False``: they cannot form
reference cycles, and at 100,000 ticks a second the garbage collector would otherwise
count and scan every one.

The same Structs are used on the wire (JSON), by the engine and for the docs.
Variants are tagged unions so that decoding picks the class from the ``type`` (or
``model``) field. Config-like input (instruments, collateral, ``liqmon evaluate``
requests) forbids unknown fields, so a typo is an error rather than a default; wire
messages (prices, ledger events) ignore fields they do not know, so producers can add
fields before every consumer is upgraded (``monitor.strict``). Timestamps are event
times in milliseconds since the Unix epoch (``ts``); the engine never reads a clock.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import msgspec

__all__ = [
    "MAX_ID_LENGTH",
    "AccountMode",
    "AccountRisk",
    "AccountState",
    "AdlCandidate",
    "AdlQueue",
    "CollateralAsset",
    "CycleInput",
    "CyclePhase",
    "Delivery",
    "EvaluateAccount",
    "EvaluatePosition",
    "EvaluateRequest",
    "Fill",
    "Funding",
    "Greeks",
    "Instrument",
    "InstrumentKind",
    "IsolatedMargin",
    "LedgerCheckpoint",
    "LedgerEvent",
    "LossReducer",
    "MarginEvent",
    "MarginEventType",
    "MarginModelSpec",
    "MarginParameters",
    "MarginSettings",
    "OptionStandardMargin",
    "PortfolioGroupRisk",
    "PortfolioMarginParams",
    "PortfolioModel",
    "PositionRisk",
    "PriceReference",
    "PriceTick",
    "PricesScreened",
    "RateCurve",
    "Reduction",
    "ScenarioPnl",
    "ScenarioPoint",
    "ScenarioSetName",
    "ScenarioSetRisk",
    "SizeScaledMargin",
    "SnapshotChunk",
    "SolvencyReport",
    "StateRecord",
    "StressContributor",
    "StressResult",
    "StressScenario",
    "Tier",
    "TieredMargin",
    "Transfer",
    "Trigger",
    "UnitStates",
    "VarEsRequest",
    "VarEsRisk",
    "VolatilityState",
]

MAX_ID_LENGTH = 256
"""Longest account id, ledger id, symbol or asset name accepted on the input topics."""

Id = Annotated[str, msgspec.Meta(max_length=MAX_ID_LENGTH)]
"""A name or id on the wire: at most ``MAX_ID_LENGTH`` characters, so no input can make an
event or a dead letter too large to publish."""

AccountMode = Literal["cross", "isolated", "portfolio"]
AccountState = Literal["healthy", "margin_call", "liquidation", "bankrupt"]
Trigger = Literal["price", "ledger", "restore"]
MarginEventType = Literal[
    "margin_call",
    "margin_call_cleared",
    "liquidation",
    "liquidation_cleared",
    "bankruptcy",
    "bankruptcy_cleared",
]


# --------------------------------------------------------------------------- instruments


class Tier(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One risk-limit bracket, as Binance and Bybit publish them.

    ``floor``/``cap`` bound the position notional (quote units) the bracket covers.
    ``mmr`` is the maintenance margin rate. The initial rate is ``imr`` or
    ``1 / max_leverage`` (give one). ``cum`` is the maintenance amount (Binance
    "cum", Bybit "deduction"); when absent it is derived from the brackets below.
    """

    floor: float
    cap: float
    mmr: float
    imr: float | None = None
    max_leverage: float | None = None
    cum: float | None = None


class TieredMargin(
    msgspec.Struct,
    tag="tiered",
    tag_field="model",
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
):
    """Risk-limit brackets by position notional (Binance USDⓈ-M, Bybit linear)."""

    tiers: tuple[Tier, ...]


class RateCurve(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A margin rate that grows with position size: ``base + slope * |size|``."""

    base: float
    slope: float = 0.0


class SizeScaledMargin(
    msgspec.Struct,
    tag="size_scaled",
    tag_field="model",
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
):
    """Deribit-style rates scaled by position size, applied to the whole position."""

    im: RateCurve
    mm: RateCurve


class OptionStandardMargin(
    msgspec.Struct,
    tag="option_standard",
    tag_field="model",
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
):
    """Deribit's standard margin of options, per contract of one base unit.

    Short call ``IM = max(im_rate - OTM/S, im_floor) + mark``, ``MM = mm_rate + mark``;
    short put ``IM = max(max(im_rate - OTM/S, im_floor) + mark, MM)``,
    ``MM = max(mm_rate, mm_rate x mark) + mark``; longs need none. Fractions are of one
    coin for inverse (coin-settled) options, of the underlying price ``S`` for linear
    ones. See ``monitor.models._option_margin`` for the source.
    """

    im_rate: float = 0.15
    im_floor: float = 0.10
    mm_rate: float = 0.075


MarginModelSpec = TieredMargin | SizeScaledMargin | OptionStandardMargin
InstrumentKind = Literal["linear", "inverse", "option"]


class Instrument(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A tradable contract.

    * ``linear``: settles in ``quote``; ``contract_size`` base units per contract.
    * ``inverse``: settles in ``base`` (coin-margined futures and perpetuals);
      ``contract_size`` is in quote units (e.g. USD 10), PnL
      ``qty x contract_size x (1/entry - 1/mark)`` in the coin.
    * ``option``: a European option on the price ``underlying`` (the symbol of its
      forward or index price ticks), with ``strike``, ``expiry`` (ISO 8601 UTC or ms
      since the epoch), ``option_type`` and ``settle`` (``base`` for inverse options
      quoted in coin, as Deribit's BTC options; ``quote``, the default, for linear
      ones); ``contract_size`` base units per contract; margin ``option_standard``.
    """

    symbol: str
    kind: InstrumentKind
    quote: str
    base: str
    margin: MarginModelSpec
    contract_size: float = 1.0
    underlying: str | None = None
    strike: float | None = None
    expiry: int | str | None = None
    option_type: Literal["call", "put"] | None = None
    settle: str | None = None

    @property
    def settle_asset(self) -> str:
        """The asset PnL, fees and margin of this contract are paid in."""
        if self.kind == "inverse":
            return self.base
        if self.kind == "option" and self.settle is not None:
            return self.settle
        return self.quote


class CollateralAsset(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An asset accepted as collateral, valued at ``(1 - haircut) x price``.

    ``price_symbol`` names the price tick that values one unit of the asset in the
    valuation asset (default: a tick whose symbol is the asset itself, e.g. ``"BTC"``).
    The haircut applies to positive balances only; a negative balance (a debt) counts
    at full value.
    """

    asset: str
    haircut: float = 0.0
    price_symbol: str | None = None


PortfolioModel = Literal["pm_risk_matrix", "pm_greeks", "pm_hybrid"]


class PortfolioMarginParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Portfolio (risk-matrix) margin of one underlying group; defaults after Deribit's.

    ``model``: ``pm_risk_matrix`` (full revaluation on the grid), ``pm_greeks`` (the same
    grid with the delta-gamma-vega approximation) or ``pm_hybrid`` (risk matrix with
    ``IM >= hybrid_floor x standard IM``). The grid: ``price_steps`` evenly spaced moves
    in ``[-price_range, +price_range]`` times vol up / same / down, with
    ``iv x (1 +/- vol_up|vol_down x (30 / days) ^ vol_power)`` (``vol_power_short`` up to
    30 days, ``vol_power_long`` beyond), floored at ``min_iv``; plus ``extreme_moves``
    with vol up, counted at ``extreme_fraction``. ``MM = loss + contingencies``,
    ``IM = MM x im_factor``. See ``monitor.scenarios`` and docs/portfolio-margin.md.
    """

    model: PortfolioModel = "pm_risk_matrix"
    price_range: float = 0.16
    price_steps: int = 9
    vol_up: float = 0.45
    vol_down: float = 0.30
    vol_power_short: float = 0.30
    vol_power_long: float = 0.13
    min_iv: float = 0.01
    extreme_moves: tuple[float, ...] = (-0.66, -0.33, 0.5, 1.0, 2.0, 3.0)
    extreme_fraction: float = 0.2
    futures_contingency: float = 0.01
    option_contingency: float = 0.01
    im_factor: float = 1.25
    hybrid_floor: float = 0.1


# --------------------------------------------------------------------------- prices


class PriceTick(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """The newest mark price of one instrument (topic ``prices``, key = symbol).

    A tick for a collateral asset itself (e.g. ``symbol="BTC"`` priced in the
    valuation asset) values collateral held in that asset; a tick for an option's
    ``underlying`` revalues every option on it. An option's tick may carry
    ``mark_iv`` (annualised, 0.45 = 45 %), which then sets its mark by Black-76, and
    may leave ``mark_price`` out; with only ``mark_price`` (in the settle asset per
    base unit) the implied volatility is solved from it. Fields left at their default
    are left out of the JSON (JSON has no NaN for an absent ``mark_price``).
    """

    symbol: Id
    mark_price: float = math.nan
    ts: int
    index_price: float | None = None
    mark_iv: float | None = None


# --------------------------------------------------------------------------- ledger


class Fill(msgspec.Struct, tag="fill", tag_field="type", frozen=True, kw_only=True, gc=False):
    """A trade of ``account``. ``qty`` is positive; ``side`` gives the direction.

    ``fee`` is charged in ``fee_asset`` (the instrument's settle asset when absent);
    a negative fee is a rebate. Fills are idempotent by ``fill_id``.
    """

    fill_id: Id
    account: Id
    symbol: Id
    side: Literal["buy", "sell"]
    qty: float
    price: float
    ts: int
    fee: float = 0.0
    fee_asset: Id | None = None


class Transfer(
    msgspec.Struct, tag="transfer", tag_field="type", frozen=True, kw_only=True, gc=False
):
    """A deposit (``amount`` > 0) or withdrawal (``amount`` < 0) of collateral."""

    transfer_id: Id
    account: Id
    asset: Id
    amount: float
    ts: int


class Funding(msgspec.Struct, tag="funding", tag_field="type", frozen=True, kw_only=True, gc=False):
    """A funding payment on a perpetual position, in the instrument's settle asset.

    ``amount`` > 0 is received by the account, < 0 is paid by it.
    """

    funding_id: Id
    account: Id
    symbol: Id
    amount: float
    ts: int


class MarginSettings(
    msgspec.Struct, tag="margin_settings", tag_field="type", frozen=True, kw_only=True, gc=False
):
    """Change an account's margin mode, or the leverage it chose on one instrument.

    Fields left out are unchanged. ``leverage`` needs ``symbol``.
    """

    settings_id: Id
    account: Id
    ts: int
    mode: AccountMode | None = None
    symbol: Id | None = None
    leverage: float | None = None


class IsolatedMargin(
    msgspec.Struct, tag="isolated_margin", tag_field="type", frozen=True, kw_only=True, gc=False
):
    """Move collateral between the account's wallet and one isolated position.

    ``amount`` > 0 allocates margin to the position, < 0 releases it back.
    """

    adjustment_id: Id
    account: Id
    symbol: Id
    amount: float
    ts: int


class Delivery(
    msgspec.Struct, tag="delivery", tag_field="type", frozen=True, kw_only=True, gc=False
):
    """Settle an account's expired option position at ``settlement_price``.

    ``settlement_price`` is the underlying's settlement price (quote units). The
    position is closed and its intrinsic value at that price, in the settle asset,
    moves to (a long) or from (a short) the wallet. Idempotent by ``delivery_id``.
    """

    delivery_id: Id
    account: Id
    symbol: Id
    settlement_price: float
    ts: int


LedgerEvent = Fill | Transfer | Funding | MarginSettings | IsolatedMargin | Delivery


# --------------------------------------------------------------------------- events out


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


# --------------------------------------------------------------------------- what-if


ScenarioSetName = Literal["historical", "filtered", "monte_carlo"]


class VarEsRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``var_es`` part of an evaluate request (model ``var_es``, see ``monitor.evaluate_var``).

    ``history``: closes per underlying group (a future's symbol, an option underlying),
    oldest first, one per period (e.g. daily), the same count for each; the last close is
    today. ``mpor``: periods in the margin period of risk. ``window``: scenarios of the
    historical sets (default: as many as the history allows after the EWMA warm-up).
    ``model_set``: the scenario set whose ES at ``confidence`` is the IM. Each Monte Carlo
    path also moves every underlying's implied volatility: lognormal, ``vol_of_vol`` per
    period, correlated ``vol_correlation`` with the path's return.
    """

    history: dict[str, tuple[float, ...]]
    confidence: float = 0.975
    mm_factor: float = 0.8
    mpor: int = 1
    window: int | None = None
    model_set: ScenarioSetName = "filtered"
    ewma_lambda: float = 0.94
    ewma_warmup: int = 30
    paths: int = 10_000
    dof: float = 5.0
    seed: int = 1
    vol_of_vol: float = 0.06
    vol_correlation: float = -0.5


class ScenarioSetRisk(msgspec.Struct, frozen=True, kw_only=True):
    """VaR and ES (positive = loss) of one account under one scenario set."""

    scenario_set: ScenarioSetName
    scenarios: int
    seed: int | None
    var_99: float
    es_99: float
    var_975: float
    es_975: float


class VarEsRisk(msgspec.Struct, frozen=True, kw_only=True):
    """An account's ``var_es`` margin and the figures behind it."""

    initial_margin: float
    maintenance_margin: float
    confidence: float
    mpor: int
    model_set: ScenarioSetName
    sets: tuple[ScenarioSetRisk, ...]


class AccountRisk(msgspec.Struct, frozen=True, kw_only=True):
    """One account's margin figures now, summed over its margin units.

    ``var_es`` (only when the request asks for it): the ``var_es`` model's margin and the
    VaR and ES behind it (``monitor.evaluate_var``).

    ``state`` is the worst state of the account's margin units (the cross account,
    and each isolated position, whose own state and ratio are on its PositionRisk).
    ``collateral`` is the wallet balance per asset; ``collateral_value`` its value in
    the valuation asset after haircuts, plus the margin allocated to isolated positions.
    """

    account: str
    mode: AccountMode
    equity: float
    initial_margin: float
    maintenance_margin: float
    margin_ratio: float | None
    state: AccountState
    collateral_value: float
    collateral: dict[str, float]
    positions: tuple[PositionRisk, ...] = ()
    greeks: dict[str, Greeks] = {}
    portfolio: tuple[PortfolioGroupRisk, ...] = ()
    var_es: VarEsRisk | None = None


class EvaluatePosition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A position to evaluate: signed ``qty`` in contracts (negative = short).

    ``margin`` is the margin allocated to the position; it is required when the
    account is isolated and not allowed when it is cross.
    """

    symbol: str
    qty: float
    entry_price: float
    leverage: float | None = None
    margin: float | None = None


class EvaluateAccount(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An account to evaluate: its mode, wallet balance per asset and positions."""

    account: str
    mode: AccountMode = "cross"
    collateral: dict[str, float] = {}
    positions: tuple[EvaluatePosition, ...] = ()


class EvaluateRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The input of ``liqmon evaluate``: instruments, mark prices and accounts.

    ``prices`` maps a symbol to its mark price; it must price every instrument a
    position uses (an option through its underlying's price and a volatility in
    ``vols``, or its own mark price, from which the volatility is implied) and every
    collateral asset's ``price_symbol`` that an account holds. ``now`` (ms since the
    epoch or ISO 8601 UTC) is the time options are valued at. ``portfolio_margin`` gives
    the parameters of underlying groups for accounts in ``portfolio`` mode (defaults else).
    """

    instruments: tuple[Instrument, ...]
    prices: dict[str, float]
    accounts: tuple[EvaluateAccount, ...]
    collateral_assets: tuple[CollateralAsset, ...] = ()
    valuation_asset: str = "USDT"
    vols: dict[str, float] = {}
    now: int | str | None = None
    portfolio_margin: dict[str, PortfolioMarginParams] = {}
    var_es: VarEsRequest | None = None


# --------------------------------------------------------------------------- state changelog


class UnitStates(msgspec.Struct, tag="account_state", tag_field="type", frozen=True, kw_only=True):
    """The margin states of one account's units (topic ``liqmon-state``, key ``account:<id>``).

    ``units`` maps ``""`` (the cross unit) or an isolated position's symbol to its
    state; units not named are healthy. ``transitions`` gives each unit's transition
    count so far (the ``sequence`` of its last event; units not named have had none).
    Written with the events of the cycle in which the account changed state, so a
    restarted monitor resumes from it and numbers its next transitions on.
    """

    account: str
    units: dict[str, AccountState]
    ts: int
    transitions: dict[str, int] = {}


class LedgerCheckpoint(
    msgspec.Struct, tag="checkpoint", tag_field="type", frozen=True, kw_only=True
):
    """How far into one ledger partition the published states reach.

    Key ``checkpoint:<topic>:<partition>``. ``next_offset`` is the first ledger
    record not yet reflected in the states and events published so far.
    """

    topic: str
    partition: int
    next_offset: int


class PriceReference(
    msgspec.Struct, tag="price_reference", tag_field="type", frozen=True, kw_only=True
):
    """The price guard's last accepted tick of one symbol (key ``price:<symbol>``).

    A restarted monitor screens the price table against these, so a price held as out
    of band before the restart is not accepted as a first price after it.
    """

    symbol: str
    mark_price: float
    ts: int


class PricesScreened(
    msgspec.Struct, tag="prices_screened", tag_field="type", frozen=True, kw_only=True
):
    """How far one ``prices`` partition has been screened (key
    ``prices-screened:<topic>:<partition>``): bad records below ``next_offset`` are in
    the DLQ already, so a restart re-reading the table does not dead-letter them again."""

    topic: str
    partition: int
    next_offset: int


class VolatilityState(
    msgspec.Struct, tag="volatility", tag_field="type", frozen=True, kw_only=True
):
    """One underlying's EWMA volatility estimator and dynamic-margin scale (topic
    ``liqmon-state``, key ``volatility:<underlying>``), so a restart resumes both.

    The estimator fields are those of ``monitor.risk.EwmaState``, with null for "not yet"
    (JSON has no NaN): ``close`` before any mark, ``prev_close`` before a bar closed,
    ``variance`` during the warm-up. ``scale`` is the
    effective rate scale, ``stressed_scale`` the highest raw scale seen, ``evaluated_ts``
    the event time of the last bar close it was evaluated at (the max-change-per-hour
    clock), ``pending_scale`` and ``pending_ts`` an increase waiting for its lead time
    (``announced_ts`` when decided).
    """

    underlying: str
    bar: int = -1
    close: float | None = None
    prev_close: float | None = None
    returns: int = 0
    mean: float = 0.0
    m2: float = 0.0
    variance: float | None = None
    scale: float = 1.0
    stressed_scale: float = 0.0
    evaluated_ts: int = -1
    pending_scale: float | None = None
    pending_ts: int = 0
    announced_ts: int = 0


CyclePhase = Literal["prices", "rebuild", "revoke", "assign", "cycle"]


class CycleInput(msgspec.Struct, tag="cycle", tag_field="type", frozen=True, kw_only=True):
    """Where one monitor cycle's input began and ended (topic ``liqmon-state``, key
    ``cycle:<run>``), written in the cycle's own transaction so ``liqmon replay`` can form
    exactly the cycles the live service formed (docs/replay.md).

    ``run`` names one process's run and ``seq`` numbers its cycles from 0 (compaction keeps
    a run's last record; a gap in ``seq`` says boundaries were compacted away). ``phase``:
    ``prices`` (catching up on the price table before any ledger), ``rebuild`` (ledger
    partitions assigned, the book rebuilt from the ledger up to ``ledger``; ``owned`` the
    partitions assigned), ``revoke`` (partitions taken away between cycles; ``owned`` those
    left), ``assign`` (the same partitions given back: no rebuild), ``cycle`` (one poll's
    batches). ``prices`` and ``ledger`` give
    ``(partition, next offset)`` of each partition the cycle read, in the batch's order.
    ``now_ms`` is the service's clock for the cycle. ``stress_taken``: a finished solvency
    report's ADL quantiles were taken up (they show on later events); ``stress_started``:
    a solvency stress copied the book at the end of this cycle.
    """

    run: str
    seq: int
    phase: CyclePhase
    now_ms: int
    prices: tuple[tuple[int, int], ...] = ()
    ledger: tuple[tuple[int, int], ...] = ()
    owned: tuple[int, ...] = ()
    stress_taken: bool = False
    stress_started: bool = False


class SnapshotChunk(msgspec.Struct, tag="snapshot", tag_field="type", frozen=True, kw_only=True):
    """One chunk of a snapshot of the book of one ``fills`` partition (topic
    ``liqmon-state``, key ``snapshot:<topic>:<partition>:<slot>:<chunk>``, slot 0 or 1;
    ``snapshot:<topic>:<partition>:<chunk>`` from before slots).

    A snapshot is the accounts of the partition after every ledger record before
    ``next_offset``; it is ``chunks`` records long, each under Kafka's record limit, all
    with the same ``next_offset``, written over several cycles into the slot that does
    not hold the newest complete one; the cycle that writes its last chunk writes null
    values for the other slot's keys. Recovery loads the newest complete snapshot and
    replays the ledger from ``next_offset`` on. Numeric columns are little-endian arrays (base64
    in JSON), so a million accounts decode without a Python object per number: per
    account ``accounts`` (names), ``modes`` (int8: 0 cross, 1 isolated) and ``balances``
    (float64, ``len(assets)`` per account, in the order of ``assets``); per position row
    ``row_account`` (int32 index into ``accounts``), ``row_symbol`` (int32 index into
    ``symbols``), ``qty``, ``entry``, ``realised``, ``leverage`` (NaN when never chosen),
    ``isolated_margin`` (float64), ``row_flags`` (int8: 1 open, 2 open in its isolated
    unit, 4 has an isolated unit), ``row_rank`` (int32: place in its unit's position
    list, -1 when flat) and ``row_unit_order`` (int64: rank of its isolated unit's
    creation, -1 when none), so a restored book lists positions and units in the same
    order and emits the same events; and the ledger ids applied to these accounts within
    the idempotency window, oldest first: ``seen_digests`` (16 bytes each: the BLAKE2b-128
    digest of ``kind + "\\0" + id``), ``seen_stamps`` (int64: the ledger clock when
    applied) and ``seen_owners`` (int32 index into ``accounts``). Snapshots written
    before the digests carry ``seen`` (kind, id, stamp, index into ``accounts``) instead;
    both are read.
    """

    topic: str
    partition: int
    next_offset: int
    chunk: int
    chunks: int
    ts: int
    ledger_clock: int
    assets: tuple[str, ...]
    symbols: tuple[str, ...]
    accounts: list[str]
    modes: bytes
    balances: bytes
    row_account: bytes
    row_symbol: bytes
    qty: bytes
    entry: bytes
    realised: bytes
    leverage: bytes
    isolated_margin: bytes
    row_flags: bytes
    row_rank: bytes
    row_unit_order: bytes
    seen_digests: bytes = b""
    seen_stamps: bytes = b""
    seen_owners: bytes = b""
    seen: list[tuple[str, str, int, int]] = []


StateRecord = (
    UnitStates
    | LedgerCheckpoint
    | PriceReference
    | PricesScreened
    | SnapshotChunk
    | VolatilityState
    | CycleInput
)


# --------------------------------------------------------------------------- solvency


class StressScenario(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A named book-wide stress (docs/solvency.md): every instrument whose ``base`` is a
    key of ``moves`` moves by that fraction (-0.3 = 30 % down), every other by
    ``default_move``; options revalue at the shocked underlying with the volatility
    shocked ``vol`` (Deribit's shape, ``engine.portfolio_margin`` defaults)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
    moves: dict[str, Annotated[float, msgspec.Meta(gt=-1)]] = {}
    default_move: Annotated[float, msgspec.Meta(gt=-1)] = 0.0
    vol: Literal["up", "same", "down"] = "same"


class StressContributor(msgspec.Struct, frozen=True, kw_only=True):
    """An account (or account group) and its bad debt under a scenario."""

    account: str
    bad_debt: float


class StressResult(msgspec.Struct, frozen=True, kw_only=True):
    """The book under one scenario. ``bad_debt`` is the sum over margin units of
    ``max(0, -(equity + scenario P&L))``; ``bankrupt_accounts`` counts accounts with a
    unit whose shocked equity is below zero, and ``bankrupt`` lists the first of them
    (largest debt first, at most ``report_accounts``); ``coverage`` is the insurance
    fund over the bad debt (null when there is none)."""

    scenario: str
    bad_debt: float
    bankrupt_accounts: int
    coverage: float | None
    largest: tuple[StressContributor, ...]
    bankrupt: tuple[str, ...]
    bad_debt_by_underlying: dict[str, float]


class AdlCandidate(msgspec.Struct, frozen=True, kw_only=True):
    """One position in an auto-deleveraging queue: its score and rank quantile."""

    account: str
    qty: float
    score: float
    quantile: float


class AdlQueue(msgspec.Struct, frozen=True, kw_only=True):
    """Who would be deleveraged, first first, on one side of one instrument, to absorb
    ``shortfall`` (the bad debt beyond the fund carried by positions on the other side)."""

    symbol: str
    side: Literal["long", "short"]
    shortfall: float
    candidates: tuple[AdlCandidate, ...]


class SolvencyReport(
    msgspec.Struct, tag="solvency_report", tag_field="type", frozen=True, kw_only=True
):
    """Book-wide stress of the live book (topic ``solvency``; docs/solvency.md).

    ``cover2`` is the bad debt of the two largest account groups in the worst scenario
    (``cover2_groups``), ``cover2_coverage`` the fund over it (null when it is 0).
    ``adl_candidates`` holds the queues of the worst scenario when its bad debt exceeds
    the fund (empty otherwise). ``seconds`` is how long the computation took.
    """

    ts: int
    accounts: int
    units: int
    insurance_fund: float
    scenarios: tuple[StressResult, ...]
    worst_scenario: str | None
    cover2: float
    cover2_groups: tuple[str, ...]
    cover2_coverage: float | None
    adl_candidates: tuple[AdlQueue, ...]
    seconds: float = 0.0
