"""A simulated option market: a chain, a volatility smile that moves with the market, and
accounts with realistic option books. Pure and seeded, like :mod:`monitor.market`.

* :func:`option_chain` lists linear options (settled in the underlying instrument's
  quote asset) on an instrument's mark: expiries a week to a quarter out, strikes around
  the money, a call and a put each.
* :class:`Smile` gives each option's volatility from its log-moneyness per square root of
  time (``x = ln(K/F) / sqrt(T)``): ``atm x (1 + skew x + curvature x^2)``, with the
  at-the-money level rising as the underlying falls (``atm = atm0 x (F/F0)^-beta``): puts
  richer than calls, and vols up in a sell-off, as crypto option markets show.
* :func:`option_books` opens accounts with short strangles, covered calls (long the
  underlying perpetual, short a call), bull call spreads and naked short puts, each
  funded with 1.1-2.5x its initial margin.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

from monitor.models import black76, expiry_ms, years_to_expiry
from monitor.models._option_margin import short_option_margins
from monitor.schema import Fill, Instrument, LedgerEvent, OptionStandardMargin, PriceTick, Transfer

__all__ = ["Smile", "option_books", "option_chain", "option_ticks"]

DAY_MS: Final = 86_400_000
EXPIRY_DAYS: Final = (7, 30, 90)
MONEYNESS: Final = (0.7, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2, 1.3)


def option_chain(underlying: Instrument, spot: float, start_ts: int) -> list[Instrument]:
    """Calls and puts on ``underlying``'s mark for each expiry and strike around ``spot``.

    Expiries are at 08:00 UTC, ``EXPIRY_DAYS`` after ``start_ts``; symbols read as
    Deribit's (``BTCUSDT-27DEC24-90000-C``).
    """
    step = 10.0 ** max(0, math.floor(math.log10(spot)) - 2)
    out = []
    for days in EXPIRY_DAYS:
        day = (start_ts // DAY_MS + days) * DAY_MS + 8 * 3_600_000
        label = datetime.fromtimestamp(day / 1000, UTC).strftime("%d%b%y").upper()
        for m in MONEYNESS:
            strike = round(spot * m / step) * step
            for kind in ("call", "put"):
                option_type: Literal["call", "put"] = kind
                out.append(
                    Instrument(
                        symbol=f"{underlying.symbol}-{label}-{strike:g}-{kind[0].upper()}",
                        kind="option",
                        quote=underlying.quote,
                        base=underlying.base,
                        settle=underlying.quote,
                        underlying=underlying.symbol,
                        strike=strike,
                        expiry=datetime.fromtimestamp(day / 1000, UTC).strftime(
                            "%Y-%m-%dT%H:%M:%SZ"
                        ),
                        option_type=option_type,
                        margin=OptionStandardMargin(),
                    )
                )
    return out


class Smile:
    """Volatility per option of a chain, given the underlying's price now and at the start."""

    def __init__(
        self,
        chain: Sequence[Instrument],
        start_price: float,
        atm: float = 0.55,
        skew: float = -0.12,
        curvature: float = 0.05,
        beta: float = 1.5,
    ) -> None:
        self.symbols = [i.symbol for i in chain]
        self.strike = np.array([i.strike for i in chain], dtype=np.float64)
        self.expiry = np.array([expiry_ms(i.expiry or 0) for i in chain], dtype=np.float64)
        self.is_call = np.array([i.option_type == "call" for i in chain])
        self.start_price = start_price
        self.atm, self.skew, self.curvature, self.beta = atm, skew, curvature, beta

    def vols(self, price: float, ts: int) -> NDArray[np.float64]:
        years = np.maximum(years_to_expiry(self.expiry, ts), 1.0 / 365)
        x = np.log(self.strike / price) / np.sqrt(years)
        level = self.atm * (price / self.start_price) ** -self.beta
        result: NDArray[np.float64] = np.clip(
            level * (1.0 + self.skew * x + self.curvature * x * x), 0.05, 5.0
        )
        return result

    def values(self, price: float, ts: int) -> NDArray[np.float64]:
        """Black-76 value per base unit in the quote asset."""
        years = years_to_expiry(self.expiry, ts)
        return black76(price, self.strike, years, self.vols(price, ts), self.is_call).value


def option_ticks(smile: Smile, price: float, ts: int) -> list[PriceTick]:
    """One tick per option of the chain at the underlying's ``price``: its ``mark_iv``
    and, as venues' tickers also show, the ``mark_price`` that vol gives."""
    vols = np.round(smile.vols(price, ts), 6)
    years = years_to_expiry(smile.expiry, ts)
    values = black76(price, smile.strike, years, vols, smile.is_call).value
    return [
        PriceTick(symbol=s, mark_price=round(p, 8), mark_iv=v, ts=ts)
        for s, v, p in zip(smile.symbols, vols.tolist(), values.tolist(), strict=True)
    ]


# The strategies, as (moneyness, type, side) legs; "U" is the underlying perpetual.
_BOOKS: Final = {
    "short_strangle": ((0.9, "P", -1.0), (1.1, "C", -1.0)),
    "covered_call": ((None, "U", 1.0), (1.1, "C", -1.0)),
    "bull_call_spread": ((1.0, "C", 1.0), (1.1, "C", -1.0)),
    "naked_short_put": ((0.95, "P", -1.0),),
}


def option_books(
    underlying: Instrument,
    chain: Sequence[Instrument],
    smile: Smile,
    spot: float,
    start_ts: int,
    accounts: int,
    seed: int,
    prefix: str = "opt-",
) -> Iterator[LedgerEvent]:
    """Deposits and opening fills of ``accounts`` option accounts (one strategy each)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 9]))
    values = smile.values(spot, start_ts)
    index = {i.symbol: k for k, i in enumerate(chain)}
    by_leg = {
        (i.expiry, i.strike, (i.option_type or "c")[0].upper()): k for k, i in enumerate(chain)
    }
    expiries = sorted({i.expiry for i in chain if i.expiry is not None}, key=str)
    strikes = sorted({float(i.strike or 0.0) for i in chain})
    names = list(_BOOKS)
    width = len(str(max(accounts - 1, 0)))
    for a in range(accounts):
        name = f"{prefix}{a:0{width}d}"
        book = names[int(rng.integers(len(names)))]
        expiry = expiries[int(rng.integers(min(2, len(expiries))))]
        qty = round(float(rng.uniform(0.1, 3.0)), 1)
        legs: list[tuple[str, str, float, float]] = []  # symbol, side, qty, price
        initial = 0.0
        for moneyness, kind, side in _BOOKS[book]:
            if kind == "U":
                legs.append((underlying.symbol, "buy", qty, spot))
                initial += qty * spot * 0.02
                continue
            assert moneyness is not None
            target = spot * moneyness
            strike = min(strikes, key=lambda k: abs(k - target))
            k = by_leg[(expiry, strike, kind)]
            price = round(float(values[k]), 2)
            legs.append((chain[k].symbol, "buy" if side > 0 else "sell", qty, price))
            if side < 0:
                im, _ = short_option_margins(
                    np.array([price]),
                    np.array([spot]),
                    np.array([strike]),
                    np.array([kind == "C"]),
                    np.array([False]),
                    np.array([[0.15, 0.10, 0.075]]),
                )
                initial += qty * float(im[0])
            else:
                initial += qty * price
        deposit = math.ceil(initial * float(rng.uniform(1.1, 2.5)))
        yield Transfer(
            transfer_id=f"sim{seed}-{name}-deposit",
            account=name,
            asset=underlying.quote,
            amount=float(deposit),
            ts=start_ts,
        )
        for symbol, direction, size, price in legs:
            assert symbol in index or symbol == underlying.symbol
            yield Fill(
                fill_id=f"sim{seed}-{name}-open-{symbol}",
                account=name,
                symbol=symbol,
                side="buy" if direction == "buy" else "sell",
                qty=size,
                price=price,
                ts=start_ts,
            )
