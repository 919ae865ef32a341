"""Simulated coin-margined accounts: inverse perpetual positions funded in the coin.

Pure and seeded, like :mod:`monitor.market`. :func:`inverse_perpetual` describes a
Deribit-style BTC perpetual (contracts of USD 10, size-scaled rates on the coin
notional, Deribit "Inverse Futures"); :func:`inverse_books` opens accounts on it: each
deposits a log-normal amount of the coin (median 0.5) and trades 60 % long at 2-15x,
so every account starts with equity at least 1.5 times its initial margin.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from monitor.schema import Fill, Instrument, LedgerEvent, RateCurve, SizeScaledMargin, Transfer

__all__ = ["inverse_books", "inverse_perpetual"]

_LEVERAGES = (2.0, 3.0, 5.0, 10.0, 15.0)


def inverse_perpetual(base: str, quote: str = "USD") -> Instrument:
    """A coin-margined perpetual on ``base`` with Deribit's published BTC rates
    (IM 4 % + 0.005 % per coin of size, MM 2 % + 0.005 % per coin)."""
    return Instrument(
        symbol=f"{base}-PERPETUAL",
        kind="inverse",
        quote=quote,
        base=base,
        contract_size=10.0,
        margin=SizeScaledMargin(
            im=RateCurve(base=0.04, slope=0.00005), mm=RateCurve(base=0.02, slope=0.00005)
        ),
    )


def inverse_books(
    instrument: Instrument, price: float, start_ts: int, accounts: int, seed: int, prefix: str
) -> Iterator[LedgerEvent]:
    """A coin deposit and one opening fill per account on ``instrument`` at ``price``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 17]))
    width = len(str(max(accounts - 1, 0)))
    for a in range(accounts):
        name = f"{prefix}{a:0{width}d}"
        deposit = round(float(np.clip(rng.lognormal(np.log(0.5), 1.0), 0.01, 50.0)), 4)
        leverage = float(rng.choice(_LEVERAGES))
        contracts = max(1, int(deposit * leverage * price / instrument.contract_size))
        yield Transfer(
            transfer_id=f"sim{seed}-{name}-deposit",
            account=name,
            asset=instrument.base,
            amount=deposit,
            ts=start_ts,
        )
        yield Fill(
            fill_id=f"sim{seed}-{name}-open-{instrument.symbol}",
            account=name,
            symbol=instrument.symbol,
            side="buy" if rng.random() < 0.6 else "sell",
            qty=float(contracts),
            price=price,
            ts=start_ts,
        )
