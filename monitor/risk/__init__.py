"""Risk statistics for margin models: EWMA volatility, scenario sets (historical, filtered
historical, Monte Carlo), VaR/ES of scenario P&L, and backtest coverage tests.

Pure: no I/O, no clock. Inputs are numpy arrays and msgspec Structs; every random draw
comes from a seeded ``numpy.random.Generator`` the caller passes in.
"""

from monitor.risk._coverage import (
    ChristoffersenTest,
    KupiecTest,
    TrafficLight,
    christoffersen,
    es_ratio,
    kupiec,
    recalibration_scale,
    traffic_light,
    transition_counts,
)
from monitor.risk._ewma import (
    EwmaParams,
    EwmaState,
    EwmaVolatility,
    ewma_covariance,
    ewma_variance,
)
from monitor.risk._measures import tail_size, var_es, var_es_of_positions
from monitor.risk._scenarios import (
    PositionMatrix,
    filtered_historical_returns,
    historical_returns,
    linear_value_change,
    monte_carlo_returns,
    monte_carlo_vol_moves,
    scenario_pnl,
)

__all__ = [
    "ChristoffersenTest",
    "EwmaParams",
    "EwmaState",
    "EwmaVolatility",
    "KupiecTest",
    "PositionMatrix",
    "TrafficLight",
    "christoffersen",
    "es_ratio",
    "ewma_covariance",
    "ewma_variance",
    "filtered_historical_returns",
    "historical_returns",
    "kupiec",
    "linear_value_change",
    "monte_carlo_returns",
    "monte_carlo_vol_moves",
    "recalibration_scale",
    "scenario_pnl",
    "tail_size",
    "traffic_light",
    "transition_counts",
    "var_es",
    "var_es_of_positions",
]
