"""What-if requests and answers: ``liqmon evaluate``, VaR/ES and account risk."""

from __future__ import annotations

from typing import Literal

import msgspec

from monitor.schema._common import AccountMode, AccountState
from monitor.schema._events import Greeks, PortfolioGroupRisk, PositionRisk
from monitor.schema._instruments import CollateralAsset, Instrument, PortfolioMarginParams

__all__ = [
    "AccountRisk",
    "EvaluateAccount",
    "EvaluatePosition",
    "EvaluateRequest",
    "ScenarioSetName",
    "ScenarioSetRisk",
    "VarEsRequest",
    "VarEsRisk",
]


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
