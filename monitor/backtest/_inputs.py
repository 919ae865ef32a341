"""The backtest's input files: a daily price history (CSV) and portfolios (JSON).

Prices: a header ``date,<symbol>,<symbol>...`` then one row per day, oldest first, with
the day as ``YYYY-MM-DD`` and a close > 0 for every symbol. Portfolios: the instruments
(exactly the instruments file format, :mod:`monitor.instruments`) and
``portfolios: [{"name": ..., "positions": {symbol: qty}}]``. Every problem is one
:class:`monitor.errors.InputError` line naming the file and the line or field.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from importlib import resources
from pathlib import Path

import msgspec
import numpy as np
from numpy.typing import NDArray

from monitor.errors import InputError
from monitor.instruments import load_instrument_file
from monitor.schema import Instrument

__all__ = [
    "BUNDLED_PORTFOLIOS",
    "BUNDLED_PRICES",
    "PortfolioBook",
    "PriceHistory",
    "load_portfolios",
    "load_prices",
]

BUNDLED_PRICES = Path(str(resources.files("monitor") / "data" / "prices_daily.csv"))
BUNDLED_PORTFOLIOS = Path(str(resources.files("monitor") / "data" / "portfolios.json"))


class PriceHistory(msgspec.Struct, frozen=True):
    """Daily closes: ``prices[t, j]`` is ``symbols[j]`` on ``dates[t]``, oldest first."""

    dates: tuple[str, ...]
    symbols: tuple[str, ...]
    prices: NDArray[np.float64]


class PortfolioBook(msgspec.Struct, frozen=True):
    """Instruments (one per price column used) and ``qty[p, i]``, portfolio ``p``'s
    quantity of ``instruments[i]`` in contracts."""

    instruments: tuple[Instrument, ...]
    names: tuple[str, ...]
    qty: NDArray[np.float64]


class _Portfolio(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    positions: dict[str, float]


class _PortfolioFile(msgspec.Struct, frozen=True):
    portfolios: tuple[_Portfolio, ...]


def load_prices(path: str | Path) -> PriceHistory:
    """Read a daily closes CSV (see the module docstring)."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise InputError(f"{path}: cannot read the price history: {exc.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: not a CSV text file: {exc}") from None
    if not rows or not rows[0] or rows[0][0].strip().lower() != "date" or len(rows[0]) < 2:
        raise InputError(f"{path}: line 1: expected a header 'date,<symbol>,...'")
    symbols = tuple(name.strip() for name in rows[0][1:])
    if len(set(symbols)) != len(symbols) or not all(symbols):
        raise InputError(f"{path}: line 1: symbols must be non-empty and distinct")
    dates: list[str] = []
    prices = np.empty((len(rows) - 1, len(symbols)))
    previous = ""
    for t, row in enumerate(rows[1:]):
        line = t + 2
        if len(row) != len(symbols) + 1:
            raise InputError(f"{path}: line {line}: expected {len(symbols) + 1} fields")
        day = row[0].strip()
        try:
            dt.date.fromisoformat(day)
        except ValueError:
            raise InputError(f"{path}: line {line}: date {day!r} is not YYYY-MM-DD") from None
        if day <= previous:
            raise InputError(f"{path}: line {line}: date {day} is not after {previous}")
        previous = day
        dates.append(day)
        for j, text in enumerate(row[1:]):
            try:
                value = float(text)
            except ValueError:
                value = math.nan
            if not (math.isfinite(value) and value > 0):
                raise InputError(
                    f"{path}: line {line}: {symbols[j]} close {text!r} must be a number > 0"
                )
            prices[t, j] = value
    if len(dates) < 3:
        raise InputError(f"{path}: needs at least 3 days of prices, has {len(dates)}")
    return PriceHistory(tuple(dates), symbols, prices)


def load_portfolios(path: str | Path, history: PriceHistory) -> PortfolioBook:
    """Read instruments and portfolios; every instrument must have a price column."""
    path = Path(path)
    if path.suffix.lower() != ".json":
        raise InputError(f"{path}: the portfolios file must be JSON (.json); see docs/backtest.md")
    instruments = load_instrument_file(path, other_sections=("portfolios",)).instruments
    try:
        parsed = msgspec.json.decode(path.read_bytes(), type=_PortfolioFile)
    except msgspec.ValidationError as exc:
        raise InputError(f"{path}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InputError(f"{path}: not valid JSON: {exc}") from None
    by_symbol = {instrument.symbol: i for i, instrument in enumerate(instruments)}
    for i, instrument in enumerate(instruments):
        if instrument.symbol not in history.symbols:
            raise InputError(
                f"{path}: $.instruments[{i}].symbol: {instrument.symbol} has no column in the "
                f"price history (columns: {', '.join(history.symbols)})"
            )
    settle = {instrument.settle_asset for instrument in instruments}
    if len(settle) > 1:
        raise InputError(
            f"{path}: instruments settle in {', '.join(sorted(settle))}; a backtest needs one "
            "settle asset"
        )
    if not parsed.portfolios:
        raise InputError(f"{path}: $.portfolios: no portfolios; add at least one")
    qty = np.zeros((len(parsed.portfolios), len(instruments)))
    names: list[str] = []
    for p, portfolio in enumerate(parsed.portfolios):
        where = f"$.portfolios[{p}]"
        if not portfolio.name or portfolio.name in names:
            raise InputError(f"{path}: {where}.name: must be non-empty and unique")
        names.append(portfolio.name)
        if not portfolio.positions:
            raise InputError(f"{path}: {where}.positions: no positions")
        for symbol, amount in portfolio.positions.items():
            if symbol not in by_symbol:
                raise InputError(f"{path}: {where}.positions.{symbol}: unknown instrument")
            if not math.isfinite(amount):
                raise InputError(f"{path}: {where}.positions.{symbol}: must be a finite number")
            qty[p, by_symbol[symbol]] = amount
    return PortfolioBook(tuple(instruments), tuple(names), qty)
