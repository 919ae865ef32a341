"""The margin engine: ledger events and price ticks in, margin events out.

Pure, synchronous and deterministic: no Kafka, no clock reads, no I/O. See
``Engine.apply`` for one processing cycle and ``monitor.states`` for the states
and their hysteresis.
"""

from monitor.engine._config import EngineConfig
from monitor.engine._engine import CycleOutput, Engine
from monitor.engine._events import MAX_EVENT_BYTES, event_id, fit_positions
from monitor.engine._exposure import Exposure, exposure
from monitor.engine._portfolio import GroupLayout, PortfolioMargins
from monitor.engine._portfolio_risk import account_groups, group_rows
from monitor.engine._reduction import kept_fraction
from monitor.engine._restore import judge_all, restore_states, unit_record
from monitor.engine._validation import (
    MAX_AMOUNT,
    MAX_LEVERAGE,
    MAX_PRICE,
    MAX_QUANTITY,
    MAX_TS_MS,
    MAX_VOLATILITY,
    SHAPE_REASONS,
    shape_problem,
)
from monitor.engine._verify import VerifySweep
from monitor.engine._warm import warm_up

__all__ = [
    "MAX_AMOUNT",
    "MAX_EVENT_BYTES",
    "MAX_LEVERAGE",
    "MAX_PRICE",
    "MAX_QUANTITY",
    "MAX_TS_MS",
    "MAX_VOLATILITY",
    "SHAPE_REASONS",
    "CycleOutput",
    "Engine",
    "EngineConfig",
    "Exposure",
    "GroupLayout",
    "PortfolioMargins",
    "VerifySweep",
    "account_groups",
    "event_id",
    "exposure",
    "fit_positions",
    "group_rows",
    "judge_all",
    "kept_fraction",
    "restore_states",
    "shape_problem",
    "unit_record",
    "warm_up",
]
