"""A seeded market and account generator: what ``liqmon simulate`` publishes.

Pure and deterministic: the same :class:`MarketSpec`, instruments and start prices
give the same accounts, ledger events and price ticks, whatever the block sizes the
caller asks for (each random quantity has its own stream, drawn in order). No I/O,
no clock: time is ``spec.start_ts`` plus simulated seconds.

Prices follow geometric Brownian motion with a common market factor (crypto moves
together) plus Poisson jumps; the ``crash`` scenario adds a deterministic fall of
about ``crash.drop`` spread over ``crash.duration_s`` seconds. Accounts open
leveraged positions at the start prices, sized so that every account starts
healthy: its initial margin is at most ``utilisation`` (25-85 %) of its deposit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Final, NamedTuple

import msgspec
import numpy as np
from numpy.typing import NDArray

from monitor.models import KIND_SIZE_SCALED, ModelTable
from monitor.schema import (
    Fill,
    Instrument,
    IsolatedMargin,
    LedgerEvent,
    MarginSettings,
    PriceTick,
    Transfer,
)

__all__ = [
    "AccountPlan",
    "CrashSpec",
    "MarketSpec",
    "PricePath",
    "ledger_events",
    "plan_accounts",
    "price_decimals",
]

_SECONDS_PER_YEAR: Final = 365.0 * 24 * 3600
# Leverage traders pick, and how often (most trade 5-25x; a few max it out).
_LEVERAGES: Final = np.array([2, 3, 5, 10, 15, 20, 25, 50, 75, 100, 125], dtype=np.float64)
_LEVERAGE_ODDS: Final = np.array([6, 6, 14, 20, 10, 16, 10, 10, 4, 2, 2], dtype=np.float64) / 100
_POSITIONS_PER_ACCOUNT: Final = np.array([1, 2, 3])
_POSITIONS_ODDS: Final = np.array([0.5, 0.3, 0.2])
# Significant digits of published mark prices (31967.27 has 7).
_PRICE_DIGITS: Final = 7


class CrashSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A market-wide fall: about ``drop`` (0.3 = 30 %), starting ``at_s`` seconds after
    the first tick and spread evenly over ``duration_s`` seconds. Each instrument falls
    ``drop`` scaled by its own factor in ``1 +- dispersion``, capped at 95 %."""

    at_s: float = 10.0
    drop: float = 0.30
    duration_s: float = 3.0
    dispersion: float = 0.25


class MarketSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Everything that determines a simulation besides the instruments and start prices.

    ``step_s`` is the simulated time between price steps (each step ticks every
    instrument once). ``volatility`` is annualised; ``correlation`` is that of any two
    instruments' diffusions; jumps arrive at ``jump_rate_per_s`` per instrument with
    log-size ~ N(0, ``jump_sigma``). ``positions_per_account``: every account holds that
    many positions (at most one per instrument); None: 1, 2 or 3 (odds 50/30/20 %).
    """

    seed: int = 0
    start_ts: int = 1_732_000_000_000
    step_s: float = 1.0
    volatility: float = 0.8
    correlation: float = 0.7
    jump_rate_per_s: float = 0.01
    jump_sigma: float = 0.03
    crash: CrashSpec | None = None
    accounts: int = 1000
    positions_per_account: int | None = None
    account_prefix: str = "acct-"
    isolated_fraction: float = 0.2
    taker_fee_rate: float = 0.0005


def _streams(seed: int) -> list[np.random.Generator]:
    """Independent generators, one per random quantity, so draws never interleave."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)]


def price_decimals(price: float) -> int:
    """Decimals that give a price of this size ``_PRICE_DIGITS`` significant digits."""
    return int(min(12, max(0, _PRICE_DIGITS - 1 - math.floor(math.log10(price)))))


# --------------------------------------------------------------------------- prices


class PricePath:
    """Mark prices of ``symbols``, step by step; step 0 is ``start`` at ``spec.start_ts``."""

    def __init__(
        self,
        symbols: Sequence[str],
        start: Sequence[float],
        spec: MarketSpec,
        bases: Sequence[str] | None = None,
    ) -> None:
        if len(symbols) != len(start) or not symbols:
            raise ValueError("give one start price per symbol, and at least one symbol")
        bases = list(symbols) if bases is None else list(bases)
        if len(bases) != len(symbols):
            raise ValueError("give one base asset per symbol")
        self.symbols: tuple[str, ...] = tuple(symbols)
        self.spec = spec
        # Instruments on one base asset (a Binance and a Deribit BTC perpetual) share
        # one random path, so they move together and crash together.
        underlyings = list(dict.fromkeys(bases))
        self._underlying = np.array([underlyings.index(b) for b in bases], dtype=np.intp)
        self._n_underlyings = len(underlyings)
        start_prices = np.asarray(start, dtype=np.float64)
        self._log_start = np.log(start_prices)
        self._log_move = np.zeros(len(underlyings))
        self._decimals = [price_decimals(float(p)) for p in start_prices]
        self.start = self._rounded(start_prices[None, :].copy())[0]
        self.steps = 0
        _, market_rng, idio_rng, jump_rng, jump_size_rng, crash_rng = _streams(spec.seed)
        self._market_rng, self._idio_rng = market_rng, idio_rng
        self._jump_rng, self._jump_size_rng = jump_rng, jump_size_rng
        self._crash_log_move = np.zeros(len(underlyings))
        if spec.crash is not None:
            spread = crash_rng.uniform(-1.0, 1.0, size=len(underlyings)) * spec.crash.dispersion
            drop = np.clip(spec.crash.drop * (1.0 + spread), 0.0, 0.95)
            self._crash_log_move = np.log1p(-drop)

    @classmethod
    def for_instruments(
        cls, instruments: Sequence[Instrument], start: Sequence[float], spec: MarketSpec
    ) -> PricePath:
        """A path over ``instruments`` (in order), sharing randomness per base asset."""
        return cls(
            [i.symbol for i in instruments], start, spec, bases=[i.base for i in instruments]
        )

    def ts_of(self, step: int) -> int:
        """The event time (ms) of a step."""
        return self.spec.start_ts + round(step * self.spec.step_s * 1000.0)

    def advance(self, n_steps: int) -> NDArray[np.float64]:
        """Prices of the next ``n_steps`` steps, shape ``(n_steps, len(symbols))``."""
        spec, b = self.spec, self._n_underlyings
        dt = spec.step_s
        sigma = spec.volatility / math.sqrt(_SECONDS_PER_YEAR) * math.sqrt(dt)
        shock = math.sqrt(spec.correlation) * self._market_rng.standard_normal((n_steps, 1))
        shock = shock + math.sqrt(1.0 - spec.correlation) * self._idio_rng.standard_normal(
            (n_steps, b)
        )
        moves = sigma * shock - 0.5 * sigma * sigma
        jumps = self._jump_rng.random((n_steps, b)) < min(1.0, spec.jump_rate_per_s * dt)
        moves += jumps * (spec.jump_sigma * self._jump_size_rng.standard_normal((n_steps, b)))
        if spec.crash is not None:
            moves += self._crash_fraction(n_steps)[:, None] * self._crash_log_move[None, :]
        path = self._log_move + np.cumsum(moves, axis=0)
        if n_steps:
            self._log_move = path[-1].copy()
        self.steps += n_steps
        return self._rounded(np.exp(self._log_start + path[:, self._underlying]))

    def _crash_fraction(self, n_steps: int) -> NDArray[np.float64]:
        """Share of the crash window inside each step's interval ``((k-1) dt, k dt]``."""
        assert self.spec.crash is not None
        crash, dt = self.spec.crash, self.spec.step_s
        k = np.arange(self.steps + 1, self.steps + n_steps + 1, dtype=np.float64)
        end = crash.at_s + crash.duration_s
        overlap = np.minimum(k * dt, end) - np.maximum((k - 1) * dt, crash.at_s)
        fraction: NDArray[np.float64] = np.clip(overlap, 0.0, None) / max(crash.duration_s, 1e-12)
        return fraction

    def _rounded(self, prices: NDArray[np.float64]) -> NDArray[np.float64]:
        for j, decimals in enumerate(self._decimals):
            prices[:, j] = np.round(prices[:, j], decimals)
        return prices

    def ticks(
        self, prices: NDArray[np.float64], first_step: int, shift_ms: int = 0
    ) -> list[PriceTick]:
        """PriceTicks for a block of prices whose first row is step ``first_step``.

        ``shift_ms`` delays their event times (a publisher that started the stream late).
        """
        symbols = self.symbols
        return [
            PriceTick(symbol=symbols[j], mark_price=price, ts=self.ts_of(first_step + i) + shift_ms)
            for i, row in enumerate(prices.tolist())
            for j, price in enumerate(row)
        ]


# --------------------------------------------------------------------------- accounts


class AccountPlan(NamedTuple):
    """The generated accounts and their opening positions, as parallel arrays.

    Positions are grouped by account (``position_account`` is sorted); ``leverage`` is
    NaN on size-scaled instruments (the venue sets the rate). ``isolated_topup`` is the
    margin added to an isolated position after it opened (on top of the initial margin
    the venue moves to it at the fill); NaN for positions of cross accounts. Deposits
    are per (account, asset).
    """

    accounts: list[str]
    isolated: NDArray[np.bool_]
    position_account: NDArray[np.intp]
    position_instrument: NDArray[np.intp]
    qty: NDArray[np.float64]
    price: NDArray[np.float64]
    leverage: NDArray[np.float64]
    fee: NDArray[np.float64]
    initial_margin: NDArray[np.float64]
    isolated_topup: NDArray[np.float64]
    deposit_account: NDArray[np.intp]
    deposit_asset: list[str]
    deposit_amount: NDArray[np.float64]

    @property
    def ledger_count(self) -> int:
        """How many ledger events :func:`ledger_events` yields."""
        iso = int(self.isolated.sum())
        leverage_settings = int(np.count_nonzero(~np.isnan(self.leverage)))
        adjustments = int(np.count_nonzero(~np.isnan(self.isolated_topup)))
        return len(self.deposit_amount) + iso + leverage_settings + len(self.qty) + adjustments


def plan_accounts(
    instruments: Sequence[Instrument], start: Sequence[float], spec: MarketSpec
) -> AccountPlan:
    """Draw ``spec.accounts`` accounts with 1-3 leveraged positions each (or
    ``spec.positions_per_account``), all healthy.

    Instruments earlier in the list are traded more. Each account spends a share
    ``utilisation`` (25-85 %) of its deposit on initial margin plus fees (isolated
    accounts: plus their top-ups), so equity exceeds initial margin by at least 15 %
    at the start prices. Leverage is capped by the bracket the position lands in.
    """
    rng = _streams(spec.seed)[0]
    table = ModelTable.from_instruments(instruments)
    n, m = spec.accounts, len(instruments)
    price0 = np.asarray(start, dtype=np.float64)

    count = np.minimum(rng.choice(_POSITIONS_PER_ACCOUNT, size=n, p=_POSITIONS_ODDS), m)
    if spec.positions_per_account is not None:
        if not 1 <= spec.positions_per_account <= m:
            raise ValueError(
                f"positions_per_account is {spec.positions_per_account}: give 1 to {m}, "
                "one position per instrument at most"
            )
        count = np.full(n, spec.positions_per_account, dtype=count.dtype)
    popularity = -0.7 * np.log(np.arange(1, m + 1))
    keys = popularity + rng.gumbel(size=(n, m))  # Gumbel top-k: weighted, no repeats
    order = np.argsort(-keys, axis=1, kind="stable")
    instrument = order[np.arange(m)[None, :] < count[:, None]].astype(np.intp)
    account = np.repeat(np.arange(n, dtype=np.intp), count)

    scale = np.clip(rng.lognormal(math.log(5_000.0), 1.2, size=n), 200.0, 2_000_000.0)
    utilisation = rng.uniform(0.25, 0.85, size=n)
    isolated = rng.random(n) < spec.isolated_fraction
    weight = rng.uniform(0.5, 1.5, size=len(instrument))
    weight /= np.bincount(account, weight, minlength=n)[account]
    budget = scale[account] * utilisation[account] * weight  # initial margin per position
    side = np.where(rng.random(len(instrument)) < 0.55, 1.0, -1.0)
    leverage = rng.choice(_LEVERAGES, size=len(instrument), p=_LEVERAGE_ODDS)
    buffer = rng.uniform(1.15, 1.6, size=len(instrument))

    price = price0[instrument]
    layout = table.layout
    scaled = layout.kind[instrument] == KIND_SIZE_SCALED
    leverage = np.where(scaled, np.nan, _cap_leverage(table, instrument, leverage, budget))
    notional = np.where(scaled, _size_scaled_notional(table, instrument, budget, price), 0.0)
    notional = np.where(scaled, notional, budget * leverage)

    unit = price * layout.contract_size[instrument]
    step = np.minimum(1.0, 10.0 ** (1 - np.floor(np.log10(unit))))
    qty = np.maximum(np.floor(notional / unit / step), 1.0) * step
    decimals = int(np.rint(-np.log10(step)).max()) if len(step) else 0
    qty = np.round(qty, decimals) * side
    notional = np.abs(qty) * unit
    leverage = np.where(scaled, np.nan, _cap_leverage(table, instrument, leverage, notional, True))
    initial, _ = table.requirements(instrument, qty, price, leverage)
    fee = np.round(notional * spec.taker_fee_rate, 8)
    # The venue moves the initial margin to an isolated position when it opens (Binance
    # USDⓈ-M convention); the account then tops it up by 15-60 %.
    topup = np.where(isolated[account], np.ceil(initial * (buffer - 1.0) * 100) / 100, np.nan)

    need = initial + fee + np.nan_to_num(topup)
    assets = sorted({i.settle_asset for i in instruments})
    asset_of = np.array([assets.index(i.settle_asset) for i in instruments], dtype=np.intp)
    slot = account * len(assets) + asset_of[instrument]
    per_slot = np.bincount(slot, need, minlength=n * len(assets))
    funded = np.flatnonzero(per_slot)
    amount = np.ceil(per_slot[funded] / utilisation[funded // len(assets)])
    width = len(str(max(n - 1, 0)))
    return AccountPlan(
        accounts=[f"{spec.account_prefix}{i:0{width}d}" for i in range(n)],
        isolated=isolated,
        position_account=account,
        position_instrument=instrument,
        qty=qty,
        price=price,
        leverage=leverage,
        fee=fee,
        initial_margin=initial,
        isolated_topup=topup,
        deposit_account=(funded // len(assets)).astype(np.intp),
        deposit_asset=[assets[int(a)] for a in funded % len(assets)],
        deposit_amount=amount,
    )


def _cap_leverage(
    table: ModelTable,
    instrument: NDArray[np.intp],
    leverage: NDArray[np.float64],
    amount: NDArray[np.float64],
    amount_is_notional: bool = False,
) -> NDArray[np.float64]:
    """Cap leverage at the bracket maximum (whole numbers, as venues take them).

    Given a margin budget, the notional is ``budget * leverage``; capping can only
    move it to a lower bracket with a higher maximum, so one pass suffices.
    """
    layout = table.layout
    top = np.floor(1.0 / layout.imr[:, 0] + 1e-9)[instrument]
    leverage = np.minimum(leverage, top)
    notional = amount if amount_is_notional else amount * leverage
    bracket = table.bracket(instrument, notional)
    allowed = np.floor(1.0 / layout.imr[instrument, bracket] + 1e-9)
    return np.maximum(np.minimum(leverage, allowed), 1.0)


def _size_scaled_notional(
    table: ModelTable,
    instrument: NDArray[np.intp],
    budget: NDArray[np.float64],
    price: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Notional whose initial margin ``N * (base + slope * N / unit)`` equals ``budget``."""
    layout = table.layout
    base = layout.imr[instrument, 0]
    curvature = layout.im_slope[instrument] / (price * layout.contract_size[instrument])
    with np.errstate(divide="ignore", invalid="ignore"):
        root = (np.sqrt(base * base + 4 * curvature * budget) - base) / (2 * curvature)
    notional: NDArray[np.float64] = np.where(curvature > 0, root, budget / base)
    return notional


def ledger_events(
    plan: AccountPlan, instruments: Sequence[Instrument], spec: MarketSpec
) -> Iterator[LedgerEvent]:
    """Each account's deposit(s), margin settings, opening fills and isolated allocations.

    Yields accounts in order and, per account: Transfers, MarginSettings (isolated
    mode, then leverage per tiered symbol), Fills at the start price, IsolatedMargin.
    """
    ts, run = spec.start_ts, f"sim{spec.seed}"
    symbols = [i.symbol for i in instruments]
    pos_end = np.cumsum(np.bincount(plan.position_account, minlength=len(plan.accounts)))
    dep_end = np.cumsum(np.bincount(plan.deposit_account, minlength=len(plan.accounts)))
    instrument = plan.position_instrument.tolist()
    qty, price, fee = plan.qty.tolist(), plan.price.tolist(), plan.fee.tolist()
    leverage, allocation = plan.leverage.tolist(), plan.isolated_topup.tolist()
    amounts, isolated = plan.deposit_amount.tolist(), plan.isolated.tolist()
    pos_start = dep_start = 0
    for a, name in enumerate(plan.accounts):
        prefix = f"{run}-{name}"
        for d in range(dep_start, int(dep_end[a])):
            asset = plan.deposit_asset[d]
            yield Transfer(
                transfer_id=f"{prefix}-deposit-{asset}",
                account=name,
                asset=asset,
                amount=amounts[d],
                ts=ts,
            )
        positions = range(pos_start, int(pos_end[a]))
        if isolated[a]:
            yield MarginSettings(settings_id=f"{prefix}-mode", account=name, ts=ts, mode="isolated")
        for p in positions:
            if not math.isnan(leverage[p]):
                symbol = symbols[instrument[p]]
                yield MarginSettings(
                    settings_id=f"{prefix}-leverage-{symbol}",
                    account=name,
                    ts=ts,
                    symbol=symbol,
                    leverage=leverage[p],
                )
        for p in positions:
            yield Fill(
                fill_id=f"{prefix}-open-{symbols[instrument[p]]}",
                account=name,
                symbol=symbols[instrument[p]],
                side="buy" if qty[p] > 0 else "sell",
                qty=abs(qty[p]),
                price=price[p],
                ts=ts,
                fee=fee[p],
            )
        for p in positions:
            if not math.isnan(allocation[p]):
                yield IsolatedMargin(
                    adjustment_id=f"{prefix}-isolated-{symbols[instrument[p]]}",
                    account=name,
                    symbol=symbols[instrument[p]],
                    amount=allocation[p],
                    ts=ts,
                )
        pos_start, dep_start = int(pos_end[a]), int(dep_end[a])
