"""Volatility from the stream and dynamic margin: EWMA volatility of each underlying's
accepted marks in event time, and rate scales that follow it within anti-procyclical
limits (see ``_margin``). Pure: the service feeds it ticks and applies what it decides."""

from monitor.dynamic._config import DynamicMarginParams, DynamicSettings
from monitor.dynamic._margin import DynamicMargin

__all__ = ["DynamicMargin", "DynamicMarginParams", "DynamicSettings"]
