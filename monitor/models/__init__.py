"""Margin models: per-instrument specs compiled into arrays and valued in bulk.

``ModelTable.from_instruments`` validates every instrument's margin spec (tiered
risk-limit brackets as Binance and Bybit publish them, or Deribit-style
size-scaled rates) and compiles them into one columnar layout; ``requirements``
and ``liquidation_prices`` then value any batch of positions with numpy, without
a Python loop over positions. Pure: no I/O, no clock.
"""

from monitor.models._black76 import (
    DAYS_PER_YEAR,
    MS_PER_YEAR,
    Black76,
    black76,
    implied_vol,
    years_to_expiry,
)
from monitor.models._contracts import (
    INVERSE,
    LINEAR,
    OPTION,
    ContractTable,
    OptionMarks,
    contract_problem,
    expiry_ms,
)
from monitor.models._layout import KIND_SIZE_SCALED, KIND_TIERED, Layout
from monitor.models._table import ModelTable

__all__ = [
    "DAYS_PER_YEAR",
    "INVERSE",
    "KIND_SIZE_SCALED",
    "KIND_TIERED",
    "LINEAR",
    "MS_PER_YEAR",
    "OPTION",
    "Black76",
    "ContractTable",
    "Layout",
    "ModelTable",
    "OptionMarks",
    "black76",
    "contract_problem",
    "expiry_ms",
    "implied_vol",
    "years_to_expiry",
]
