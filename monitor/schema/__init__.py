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

from monitor.schema._common import (
    MAX_ID_LENGTH,
    AccountMode,
    AccountState,
    MarginEventType,
    Trigger,
)
from monitor.schema._events import (
    Greeks,
    LossReducer,
    MarginEvent,
    MarginParameters,
    PortfolioGroupRisk,
    PositionRisk,
    Reduction,
    ScenarioPnl,
    ScenarioPoint,
)
from monitor.schema._instruments import (
    CollateralAsset,
    Instrument,
    InstrumentKind,
    MarginModelSpec,
    OptionStandardMargin,
    PortfolioMarginParams,
    PortfolioModel,
    RateCurve,
    SizeScaledMargin,
    Tier,
    TieredMargin,
)
from monitor.schema._solvency import (
    AdlCandidate,
    AdlQueue,
    SolvencyReport,
    StressContributor,
    StressResult,
    StressScenario,
)
from monitor.schema._state import (
    CycleInput,
    CyclePhase,
    LedgerCheckpoint,
    PriceReference,
    PricesScreened,
    SnapshotChunk,
    StateRecord,
    UnitStates,
    VolatilityState,
)
from monitor.schema._whatif import (
    AccountRisk,
    EvaluateAccount,
    EvaluatePosition,
    EvaluateRequest,
    ScenarioSetName,
    ScenarioSetRisk,
    VarEsRequest,
    VarEsRisk,
)
from monitor.schema._wire import (
    Delivery,
    Fill,
    Funding,
    IsolatedMargin,
    LedgerEvent,
    MarginSettings,
    PriceTick,
    Transfer,
)

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
