"""The end-to-end benchmark's input data: instruments, the 100,000-account ledger, ticks.

Everything is rendered once, up front, as kcat input lines ``key|json`` (JSON has no
``|``), so producing costs the benchmark no Python time while the monitor is measured.

* Instruments: the repository's example file plus ``BENCHSENTUSDT``, an instrument
  only the sentinel accounts trade, so their state flips on our command whatever the
  market does.
* Accounts: :mod:`monitor.market` (the generator behind ``liqmon simulate``), seeded.
* Sentinels: each holds one 10x long contract of ``BENCHSENTUSDT`` opened at 100 with
  11.5-12.45 USDT of collateral. With equity ``E = c + P - 100`` and initial margin
  ``IM = 0.1 P``, a unit enters margin call when ``E < IM`` (``P < (100 - c) / 0.9``,
  97.28-98.33) and leaves it when ``E >= 1.05 IM`` (the engine's 5 % hysteresis,
  ``P >= (100 - c) / 0.895``, 97.82-98.88). A sentinel tick alternating between
  :data:`SENTINEL_LOW` and :data:`SENTINEL_HIGH` (2.2 % apart, well inside the 20 % price
  band guard) therefore flips every sentinel ``margin_call <-> margin_call_cleared``.
* Market ticks: a reflected random walk within +-0.05 % of each reference price. The
  generated accounts (leverage up to 125x, at least 15 % above initial margin) almost
  all stay healthy; a few dozen close to a threshold flip now and then. The figures
  measure revaluation of the book, not a liquidation storm.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import msgspec
import numpy as np

from monitor.instruments import load_instrument_file
from monitor.market import MarketSpec, ledger_events, plan_accounts, price_decimals
from monitor.schema import Fill, Instrument, LedgerEvent, MarginSettings, Transfer

SENTINEL_SYMBOL: Final = "BENCHSENTUSDT"
SENTINEL_PREFIX: Final = "sentinel-"
SENTINEL_COUNT: Final = 20
SENTINEL_OPEN: Final = 100.0
SENTINEL_LOW: Final = 97.0
SENTINEL_HIGH: Final = 99.2
MARKET_BAND: Final = 0.0005  # market ticks stay within +-0.05 % of the reference price
_TS_SLOT: Final = b"\x00"  # where a chunk template takes its event time
_encode = msgspec.json.Encoder().encode

_SENTINEL_INSTRUMENT: Final = {
    "_source": "Benchmark-only instrument: one flat bracket, 20x maximum leverage",
    "symbol": SENTINEL_SYMBOL,
    "kind": "linear",
    "base": "BENCHSENT",
    "quote": "USDT",
    "contract_size": 1.0,
    "margin": {
        "model": "tiered",
        "tiers": [{"floor": 0.0, "cap": 1e12, "max_leverage": 20.0, "mmr": 0.004, "cum": 0.0}],
    },
}


def write_instruments(example: Path, target: Path) -> tuple[list[Instrument], dict[str, float]]:
    """Write the example instruments plus the sentinel instrument to ``target``.

    Returns the market instruments (without the sentinel) and every reference price.
    """
    raw = json.loads(example.read_text())
    raw["instruments"].append(_SENTINEL_INSTRUMENT)
    raw["reference_prices"][SENTINEL_SYMBOL] = SENTINEL_OPEN
    target.write_text(json.dumps(raw, indent=1))
    loaded = load_instrument_file(target)
    market = [i for i in loaded.instruments if i.symbol != SENTINEL_SYMBOL]
    return market, dict(loaded.reference_prices)


def sentinel_ledger(ts: int) -> Iterator[LedgerEvent]:
    """Deposit, 10x leverage and one long contract at 100 for each sentinel account."""
    for k in range(SENTINEL_COUNT):
        account = f"{SENTINEL_PREFIX}{k:02d}"
        yield Transfer(
            transfer_id=f"{account}-deposit",
            account=account,
            asset="USDT",
            amount=round(11.5 + 0.05 * k, 2),
            ts=ts,
        )
        yield MarginSettings(
            settings_id=f"{account}-leverage",
            account=account,
            symbol=SENTINEL_SYMBOL,
            leverage=10.0,
            ts=ts,
        )
        yield Fill(
            fill_id=f"{account}-open",
            account=account,
            symbol=SENTINEL_SYMBOL,
            side="buy",
            qty=1.0,
            price=SENTINEL_OPEN,
            ts=ts,
        )


def ledger_lines(
    market: list[Instrument],
    prices: dict[str, float],
    accounts: int,
    seed: int,
    ts: int,
    positions_per_account: int | None = None,
) -> list[bytes]:
    """kcat lines ``account|json`` of every generated account's ledger, then the sentinels'
    (``positions_per_account``: as ``MarketSpec``'s; None: the generator's 1-3)."""
    spec = MarketSpec(
        seed=seed, accounts=accounts, start_ts=ts, positions_per_account=positions_per_account
    )
    start = [prices[i.symbol] for i in market]
    plan = plan_accounts(market, start, spec)
    lines = [e.account.encode() + b"|" + _encode(e) for e in ledger_events(plan, market, spec)]
    lines += [e.account.encode() + b"|" + _encode(e) for e in sentinel_ledger(ts)]
    return lines


def tick_line(symbol: str, price: float, ts: bytes) -> bytes:
    """One kcat line of a PriceTick (keyed by symbol) with event time ``ts``."""
    return b'%s|{"symbol":"%s","mark_price":%s,"ts":%s}\n' % (
        symbol.encode(),
        symbol.encode(),
        repr(price).encode(),
        ts,
    )


def opening_lines(prices: dict[str, float], ts: int) -> list[bytes]:
    """One tick per instrument at its reference price: what the price table starts with."""
    return [tick_line(s, p, b"%d" % ts).rstrip(b"\n") for s, p in prices.items()]


class TickTape:
    """Chunks of ``chunk_ticks`` tick lines, rendered once, stamped with an event time on use.

    Chunk ``k`` is one sentinel tick followed by ``chunk_ticks - 1`` market ticks
    (instrument drawn uniformly, price on that instrument's reflected random walk).
    The sentinel tick is :data:`SENTINEL_HIGH` for chunks ``0 .. flip_every - 1``,
    :data:`SENTINEL_LOW` for the next ``flip_every``, and so on. ``templates`` distinct
    chunks are rendered and reused in turn (the walk restarts, a move of at most
    ``2 * MARKET_BAND``). Every tick of a chunk carries the same ``ts``.
    """

    def __init__(
        self,
        market_prices: dict[str, float],
        *,
        chunk_ticks: int,
        flip_every: int,
        templates: int = 100,
        seed: int = 1,
    ) -> None:
        self.chunk_ticks = chunk_ticks
        self.flip_every = flip_every
        rng = np.random.default_rng(seed)
        symbols = list(market_prices)
        per_chunk = chunk_ticks - 1
        total = per_chunk * templates
        which = rng.integers(0, len(symbols), total)
        price = np.empty(total)
        for j, symbol in enumerate(symbols):
            rows = np.flatnonzero(which == j)
            # Steps of 1/40 of the band: a random walk folded into [-band, band].
            walk = np.cumsum(rng.standard_normal(len(rows))) * (MARKET_BAND / 40)
            folded = MARKET_BAND - np.abs(
                np.mod(walk + MARKET_BAND, 4 * MARKET_BAND) - 2 * MARKET_BAND
            )
            reference = market_prices[symbol]
            price[rows] = np.round(reference * (1.0 + folded), price_decimals(reference))
        names, values = [symbols[j] for j in which.tolist()], price.tolist()
        self._templates: list[list[bytes]] = []
        for t in range(templates):
            body = b"".join(
                tick_line(names[i], values[i], _TS_SLOT)
                for i in range(t * per_chunk, (t + 1) * per_chunk)
            )
            self._templates.append(body.split(_TS_SLOT))
        self._sentinel = {
            level: tick_line(SENTINEL_SYMBOL, level, _TS_SLOT).split(_TS_SLOT)
            for level in (SENTINEL_HIGH, SENTINEL_LOW)
        }

    def sentinel_level(self, k: int) -> float:
        """The sentinel price of chunk ``k``."""
        return SENTINEL_LOW if (k // self.flip_every) % 2 else SENTINEL_HIGH

    def chunk(self, k: int, ts_ms: int) -> bytes:
        """Chunk ``k`` with every tick's event time set to ``ts_ms``."""
        ts = b"%d" % ts_ms
        sentinel = ts.join(self._sentinel[self.sentinel_level(k)])
        return sentinel + ts.join(self._templates[k % len(self._templates)])

    def chunks_for(self, ticks: int) -> int:
        """Chunks needed for at least ``ticks`` ticks."""
        return math.ceil(ticks / self.chunk_ticks)
