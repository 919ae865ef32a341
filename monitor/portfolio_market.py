"""Simulated hedged option books in pairs: one account on portfolio margin, its twin with
the same positions on standard margin. Pure and seeded, like :mod:`monitor.option_market`.

Each pair holds a bear put spread on the chain's nearest expiry after a week: long a put
at the money, short a put 10 % below. The short put is hedged, its loss capped by the long
one, but Deribit's standard rules margin each leg alone: as the underlying falls the short
put's standard MM (``0.075 x S + mark``) grows with its intrinsic value while equity grows
only by the spread's capped gain. Both twins deposit the same 1.2-1.6x the book's standard
initial margin, so both start healthy; in a crash of about 30 % the standard twin is
liquidated, the portfolio twin (whose risk matrix sees the cap) is not.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Final

import numpy as np

from monitor.models._option_margin import short_option_margins
from monitor.option_market import Smile
from monitor.schema import Fill, Instrument, LedgerEvent, MarginSettings, Transfer

__all__ = ["SPREAD_LEGS", "portfolio_books"]

# (moneyness, side) of the put spread's legs.
SPREAD_LEGS: Final = ((1.0, 1.0), (0.9, -1.0))
_MIN_DAYS: Final = 7.0


def portfolio_books(
    underlying: Instrument,
    chain: Sequence[Instrument],
    smile: Smile,
    spot: float,
    start_ts: int,
    pairs: int,
    seed: int,
    prefix: str = "pm-",
) -> Iterator[LedgerEvent]:
    """For each of ``pairs`` pairs: ``<prefix>pm-<k>`` on portfolio margin and
    ``<prefix>std-<k>`` on standard (cross) margin, each with a deposit and the same
    opening fills of one bear put spread."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 10]))
    puts = [k for k, i in enumerate(chain) if i.option_type == "put"]
    if not puts:
        return
    values = smile.values(spot, start_ts)
    expiry = smile.expiry[puts]
    later = expiry[expiry >= start_ts + _MIN_DAYS * 86_400_000]
    nearest = float(later.min() if later.size else expiry.max())
    candidates = [k for k in puts if smile.expiry[k] == nearest]
    legs = []
    for moneyness, side in SPREAD_LEGS:
        k = min(candidates, key=lambda c: abs(float(smile.strike[c]) - spot * moneyness))
        legs.append((k, side, round(float(values[k]), 2)))
    width = len(str(max(pairs - 1, 0)))
    for pair in range(pairs):
        qty = round(float(rng.uniform(0.5, 5.0)), 1)
        initial = 0.0
        for k, side, price in legs:
            if side > 0:
                continue
            im, _ = short_option_margins(
                np.array([price]),
                np.array([spot]),
                np.array([float(smile.strike[k])]),
                np.array([False]),
                np.array([False]),
                np.array([[0.15, 0.10, 0.075]]),
            )
            initial += qty * float(im[0])
        deposit = float(math.ceil(initial * float(rng.uniform(1.2, 1.6))))
        for twin in ("pm", "std"):
            name = f"{prefix}{twin}-{pair:0{width}d}"
            ident = f"sim{seed}-{name}"
            if twin == "pm":
                yield MarginSettings(
                    settings_id=f"{ident}-mode", account=name, mode="portfolio", ts=start_ts
                )
            yield Transfer(
                transfer_id=f"{ident}-deposit",
                account=name,
                asset=underlying.quote,
                amount=deposit,
                ts=start_ts,
            )
            for k, side, price in legs:
                yield Fill(
                    fill_id=f"{ident}-open-{chain[k].symbol}",
                    account=name,
                    symbol=chain[k].symbol,
                    side="buy" if side > 0 else "sell",
                    qty=qty,
                    price=price,
                    ts=start_ts,
                )
