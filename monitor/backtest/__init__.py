"""Backtests of margin models on a price history: margin at the start of each day versus
the loss realised over the margin period of risk, with coverage statistics
(:mod:`monitor.risk`) and an offline HTML report.

``load_prices`` and ``load_portfolios`` read the inputs, ``run_backtest`` computes (pure),
``render_report`` draws the HTML (matplotlib, imported only there).
"""

from monitor.backtest._inputs import (
    BUNDLED_PORTFOLIOS,
    BUNDLED_PRICES,
    PortfolioBook,
    PriceHistory,
    load_portfolios,
    load_prices,
)
from monitor.backtest._margins import MODELS, BacktestConfig, MarginPath, ModelName, margin_path
from monitor.backtest._report import render_report
from monitor.backtest._run import BacktestReport, BacktestRun, Coverage, EsBacktest, run_backtest
from monitor.backtest._text import format_report

__all__ = [
    "BUNDLED_PORTFOLIOS",
    "BUNDLED_PRICES",
    "MODELS",
    "BacktestConfig",
    "BacktestReport",
    "BacktestRun",
    "Coverage",
    "EsBacktest",
    "MarginPath",
    "ModelName",
    "PortfolioBook",
    "PriceHistory",
    "format_report",
    "load_portfolios",
    "load_prices",
    "margin_path",
    "render_report",
    "run_backtest",
]
