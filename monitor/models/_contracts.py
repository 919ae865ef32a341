"""Contract kinds compiled into arrays: linear, inverse and option instruments.

``ContractTable`` holds what the book and engine need to value a position of any kind
without a Python branch per position: each instrument's kind, and for options their
underlying (a dense index over the underlying price symbols), strike, expiry, type,
whether they are quoted in coin, and their ``option_standard`` rates. Options are
priced per *instrument* (:meth:`ContractTable.price_options`, one vectorised Black-76
over the instruments whose inputs moved); positions then gather their instrument's
value and margin per contract.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

import numpy as np
from numpy.typing import NDArray

from monitor.errors import ConfigError
from monitor.models._black76 import black76, implied_vol, years_to_expiry
from monitor.models._option_margin import short_option_margins
from monitor.schema import Instrument, OptionStandardMargin

__all__ = [
    "INVERSE",
    "LINEAR",
    "OPTION",
    "ContractTable",
    "OptionMarks",
    "contract_problem",
    "expiry_ms",
]

LINEAR: Final = 0
INVERSE: Final = 1
OPTION: Final = 2
_KIND_CODES: Final = {"linear": LINEAR, "inverse": INVERSE, "option": OPTION}
# Implied volatilities outside the solver's range are clipped to it (see ``vol_of``).
VOL_CAP: Final = 100.0


class OptionMarks(NamedTuple):
    """Per option instrument: value per base unit (settle asset), Greeks per base unit
    (quote currency), and the margin per base unit of a short position (settle asset)."""

    mark: NDArray[np.float64]
    greeks: NDArray[np.float64]  # [n, 4]: delta, gamma, vega, theta
    short_initial: NDArray[np.float64]
    short_maintenance: NDArray[np.float64]


def expiry_ms(expiry: int | str) -> int:
    """An expiry given as ms since the epoch or as ISO 8601 UTC, in ms.

    Raises ValueError (the message says what is wrong) for a string that is not ISO
    8601 or names no UTC offset.
    """
    if isinstance(expiry, int):
        return expiry
    try:
        moment = datetime.fromisoformat(expiry)
    except ValueError:
        raise ValueError(
            f"{expiry!r} is not ISO 8601; write e.g. 2024-12-27T08:00:00Z or ms since the epoch"
        ) from None
    if moment.utcoffset() is None:
        raise ValueError(f"{expiry!r} has no UTC offset; end it with Z")
    return round(moment.astimezone(UTC).timestamp() * 1000)


def contract_problem(instrument: Instrument) -> tuple[str, str] | None:
    """(field, problem) if the instrument's kind-specific fields are inconsistent."""
    option_fields = ("underlying", "strike", "expiry", "option_type", "settle")
    is_option_margin = isinstance(instrument.margin, OptionStandardMargin)
    if instrument.kind != "option":
        for name in option_fields:
            if getattr(instrument, name) is not None:
                return name, f"only options have {name}; remove it or set kind to option"
        if is_option_margin:
            return "margin.model", "option_standard applies to options only"
        return None
    for name in ("underlying", "strike", "expiry", "option_type"):
        if getattr(instrument, name) is None:
            return name, "required for an option"
    assert instrument.strike is not None
    assert instrument.expiry is not None
    if not instrument.underlying:
        return "underlying", "must not be empty"
    if not (math.isfinite(instrument.strike) and instrument.strike > 0):
        return "strike", f"must be a finite number > 0, got {instrument.strike}"
    try:
        expiry_ms(instrument.expiry)
    except ValueError as exc:
        return "expiry", str(exc)
    if instrument.settle not in (None, instrument.base, instrument.quote):
        return "settle", f"must be the base ({instrument.base}) or quote ({instrument.quote})"
    if not is_option_margin:
        return "margin.model", "an option needs margin model option_standard"
    margin = instrument.margin
    assert isinstance(margin, OptionStandardMargin)
    for name in ("im_rate", "im_floor", "mm_rate"):
        rate = getattr(margin, name)
        if not (math.isfinite(rate) and 0 <= rate <= 1):
            return f"margin.{name}", f"must be in [0, 1], got {rate}"
    return None


class ContractTable:
    """Kinds and option terms of a fixed, ordered list of instruments (row = instrument_ix)."""

    def __init__(self, instruments: Sequence[Instrument]) -> None:
        n = len(instruments)
        for instrument in instruments:
            problem = contract_problem(instrument)
            if problem is not None:
                raise ConfigError(f"instrument {instrument.symbol}: {problem[0]}: {problem[1]}")
        self.kind: NDArray[np.int8] = np.array(
            [_KIND_CODES[i.kind] for i in instruments], dtype=np.int8
        ).reshape(n)
        names: dict[str, int] = {}
        underlying = np.full(n, -1, dtype=np.intp)
        self.strike = np.full(n, np.nan)
        self.expiry_ms = np.full(n, np.nan)
        self.is_call = np.zeros(n, dtype=np.bool_)
        self.coin_quoted = np.zeros(n, dtype=np.bool_)
        self.rates = np.zeros((n, 3))  # im_rate, im_floor, mm_rate
        for ix, instrument in enumerate(instruments):
            if instrument.kind != "option":
                continue
            assert instrument.underlying is not None
            assert instrument.expiry is not None
            assert isinstance(instrument.margin, OptionStandardMargin)
            underlying[ix] = names.setdefault(instrument.underlying, len(names))
            self.strike[ix] = instrument.strike
            self.expiry_ms[ix] = expiry_ms(instrument.expiry)
            self.is_call[ix] = instrument.option_type == "call"
            self.coin_quoted[ix] = instrument.settle_asset == instrument.base
            margin = instrument.margin
            self.rates[ix] = (margin.im_rate, margin.im_floor, margin.mm_rate)
        self.underlying = underlying
        self.underlying_symbols: tuple[str, ...] = tuple(names)
        self.underlying_index = names
        self.options: NDArray[np.intp] = np.flatnonzero(self.kind == OPTION)
        self.has_inverse = bool((self.kind == INVERSE).any())
        self.has_options = bool(self.options.size)
        self.linear_only = not (self.has_inverse or self.has_options)
        order = np.argsort(underlying[self.options], kind="stable")
        by_underlying = self.options[order]
        bounds = np.searchsorted(underlying[by_underlying], np.arange(len(names) + 1))
        self._options_on = [by_underlying[bounds[u] : bounds[u + 1]] for u in range(len(names))]

    def options_on(self, underlying: int) -> NDArray[np.intp]:
        """The option instruments on underlying ``underlying`` (dense index)."""
        return self._options_on[underlying]

    def price_options(
        self,
        ix: NDArray[np.integer[Any]],
        underlying_price: NDArray[np.float64],
        vol: NDArray[np.float64],
        now_ms: NDArray[np.float64],
    ) -> OptionMarks:
        """Value, Greeks and short margin of option instruments ``ix`` in one pass.

        ``underlying_price``, ``vol`` and ``now_ms`` are per entry of ``ix``. Coin-quoted
        (inverse) options are worth the Black-76 value divided by the underlying price,
        Deribit's convention; their Greeks stay in the quote currency.
        """
        years = years_to_expiry(self.expiry_ms.take(ix), now_ms)
        strike = self.strike.take(ix)
        result = black76(underlying_price, strike, years, vol, self.is_call.take(ix))
        coin = self.coin_quoted.take(ix)
        mark = np.where(coin, result.value / underlying_price, result.value)
        greeks = np.column_stack((result.delta, result.gamma, result.vega, result.theta))
        rates = self.rates.take(ix, axis=0)
        initial, maintenance = short_option_margins(
            mark, underlying_price, strike, self.is_call.take(ix), coin, rates
        )
        return OptionMarks(mark, greeks, initial, maintenance)

    def vol_of(
        self,
        ix: NDArray[np.integer[Any]],
        mark: NDArray[np.float64],
        underlying_price: NDArray[np.float64],
        now_ms: NDArray[np.float64],
    ) -> NDArray[np.float64]:
        """The implied volatility of option instruments ``ix`` at ``mark`` (settle asset).

        A mark at or below intrinsic value implies 0; one at or above the no-arbitrage
        bound, or time value after expiry, is clipped to ``VOL_CAP`` (the Black-76 mark
        is then the bound): a mark tick never leaves an option without a volatility.
        """
        years = years_to_expiry(self.expiry_ms.take(ix), now_ms)
        price = np.where(self.coin_quoted.take(ix), mark * underlying_price, mark)
        vol = implied_vol(price, underlying_price, self.strike.take(ix), years, self.is_call[ix])
        result: NDArray[np.float64] = np.where(np.isnan(vol), VOL_CAP, vol)
        return result

    def intrinsic(
        self, ix: NDArray[np.intp], settlement_price: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """Intrinsic value per base unit at ``settlement_price``, in the settle asset."""
        sign = np.where(self.is_call.take(ix), 1.0, -1.0)
        value = np.maximum(sign * (settlement_price - self.strike.take(ix)), 0.0)
        result: NDArray[np.float64] = np.where(
            self.coin_quoted.take(ix), value / settlement_price, value
        )
        return result
