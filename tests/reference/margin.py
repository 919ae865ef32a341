"""A small, obviously-correct reference of the margin rules in docs/evaluate.md.

Plain Python: dicts, loops and floats, one position at a time. It imports nothing from
``monitor.models``, ``monitor.engine`` or ``monitor.book`` (a test checks this), only the
message Structs of ``monitor.schema`` to read its input, so the property tests can check
the engine against code that shares none of its arithmetic. Speed does not matter here;
clarity does: each function is one rule of the docs, in the docs' words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from monitor.schema import (
    CollateralAsset,
    Fill,
    Funding,
    Instrument,
    IsolatedMargin,
    LedgerEvent,
    MarginSettings,
    SizeScaledMargin,
    TieredMargin,
    Transfer,
)

__all__ = ["ReferenceBook", "Unit", "margins", "state_of"]

# "A result within 1e-12 of the sizes traded is flat."
FLAT = 1e-12


# --------------------------------------------------------------------------- margins


def _brackets(margin: TieredMargin) -> list[tuple[float, float, float, float]]:
    """(floor, mmr, imr, cum) per tier: imr = 1 / max_leverage when not given; cum when
    not given is cum_1 = 0, cum_i = cum_{i-1} + floor_i * (mmr_i - mmr_{i-1})."""
    rows = []
    cum = 0.0
    previous_mmr = None
    for tier in margin.tiers:
        if previous_mmr is not None:
            cum = cum + tier.floor * (tier.mmr - previous_mmr)
        imr = tier.imr if tier.imr is not None else 1.0 / (tier.max_leverage or math.nan)
        rows.append((tier.floor, tier.mmr, imr, tier.cum if tier.cum is not None else cum))
        previous_mmr = tier.mmr
    return rows


def margins(instrument: Instrument, qty: float, mark: float, leverage: float | None) -> tuple:
    """(IM, MM) of a position in the settle asset.

    Tiered: in the bracket ``(floor, cap]`` of the notional, ``MM = N * mmr - cum`` and
    ``IM = N * max(imr, 1 / leverage)``. Size-scaled: rates ``base + slope * size`` on the
    whole notional, IM at least ``N / leverage``.
    """
    size = abs(qty) * instrument.contract_size
    notional = size * mark
    spec = instrument.margin
    if isinstance(spec, TieredMargin):
        brackets = _brackets(spec)
        chosen = brackets[0]
        for bracket in brackets[1:]:
            if notional > bracket[0]:
                chosen = bracket
        _, mmr, imr, cum = chosen
        maintenance = notional * mmr - cum
        initial_rate = imr
    else:
        assert isinstance(spec, SizeScaledMargin)
        maintenance = notional * (spec.mm.base + spec.mm.slope * size)
        initial_rate = spec.im.base + spec.im.slope * size
    if leverage is not None:
        initial_rate = max(initial_rate, 1.0 / leverage)
    return notional * initial_rate, maintenance


# --------------------------------------------------------------------------- states


def state_of(equity: float, initial: float, maintenance: float, open_positions: int) -> str:
    """The level a unit enters (no hysteresis, as in ``liqmon evaluate``)."""
    if open_positions == 0:
        return "bankrupt" if equity < 0 else "healthy"
    if equity <= 0:
        return "bankrupt"
    if equity <= maintenance:
        return "liquidation"
    if equity < initial or maintenance / equity >= 0.8:
        return "margin_call"
    return "healthy"


# --------------------------------------------------------------------------- the book


@dataclass
class Position:
    qty: float = 0.0
    entry: float = 0.0
    leverage: float | None = None
    isolated: bool = False
    margin: float = 0.0  # allocated to an isolated position, in the settle asset


@dataclass
class Account:
    wallet: dict[str, float] = field(default_factory=dict)
    isolated_mode: bool = False
    positions: dict[str, Position] = field(default_factory=dict)
    # Symbols that have ever been open isolated: each is a margin unit of its own.
    isolated_units: list[str] = field(default_factory=list)


@dataclass
class Unit:
    """One margin unit's figures in the valuation asset."""

    symbol: str | None  # None: the cross unit
    collateral: float
    upnl: float
    initial: float
    maintenance: float
    open_positions: int
    magnitude: float  # |collateral terms| + sum |uPnL| + notional: what rounding scales with

    @property
    def equity(self) -> float:
        return self.collateral + self.upnl

    @property
    def state(self) -> str:
        return state_of(self.equity, self.initial, self.maintenance, self.open_positions)


class ReferenceBook:
    """Accounts replayed event by event, valued on demand, per docs/evaluate.md."""

    def __init__(
        self,
        instruments: list[Instrument],
        valuation_asset: str = "USDT",
        collateral: tuple[CollateralAsset, ...] = (),
    ) -> None:
        self.instruments = {i.symbol: i for i in instruments}
        self.valuation_asset = valuation_asset
        self.haircut = {valuation_asset: 0.0}
        self.priced_by: dict[str, str] = {}  # asset -> the symbol whose ticks price it
        for spec in collateral:
            self.haircut[spec.asset] = spec.haircut
            if spec.asset != valuation_asset:
                self.priced_by[spec.asset] = spec.price_symbol or spec.asset
        self.marks: dict[str, float] = {}
        self.asset_prices: dict[str, float] = {valuation_asset: 1.0}
        self.accounts: dict[str, Account] = {}
        self.seen: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------ prices

    def tick(self, symbol: str, price: float) -> None:
        if symbol in self.instruments:
            self.marks[symbol] = price
        for asset, by in self.priced_by.items():
            if by == symbol:
                self.asset_prices[asset] = price

    def value(self, asset: str) -> float:
        """What one unit of the asset is worth; 0 until it is priced."""
        return self.asset_prices.get(asset, 0.0)

    # ------------------------------------------------------------------ ledger

    def _account(self, name: str) -> Account:
        if name not in self.accounts:
            self.accounts[name] = Account()
        return self.accounts[name]

    def _position(self, account: Account, symbol: str) -> Position:
        if symbol not in account.positions:
            account.positions[symbol] = Position()
        return account.positions[symbol]

    def apply(self, event: LedgerEvent) -> None:
        key = (type(event).__name__, _event_id(event))
        if key in self.seen:
            return
        self.seen.add(key)
        account = self._account(event.account)
        if isinstance(event, Fill):
            self._fill(account, event)
        elif isinstance(event, Transfer):
            _credit(account.wallet, event.asset, event.amount)
        elif isinstance(event, Funding):
            position = account.positions.get(event.symbol)
            if position is not None and position.qty != 0 and position.isolated:
                position.margin += event.amount
            else:
                _credit(account.wallet, self.instruments[event.symbol].quote, event.amount)
        elif isinstance(event, MarginSettings):
            if event.mode is not None:
                account.isolated_mode = event.mode == "isolated"
            if event.leverage is not None and event.symbol is not None:
                self._position(account, event.symbol).leverage = event.leverage
        else:
            assert isinstance(event, IsolatedMargin)
            position = account.positions.get(event.symbol)
            if position is None or position.qty == 0 or not position.isolated:
                return
            if position.margin + event.amount < 0:
                return
            self._move_to_position(account, event.symbol, position, event.amount)

    def _move_to_position(
        self, account: Account, symbol: str, position: Position, amount: float
    ) -> None:
        position.margin += amount
        _credit(account.wallet, self.instruments[symbol].quote, -amount)

    def _fill(self, account: Account, fill: Fill) -> None:
        instrument = self.instruments[fill.symbol]
        settle = instrument.quote
        if fill.symbol not in self.marks:
            self.marks[fill.symbol] = fill.price  # "the first fill's price is the mark"
        position = self._position(account, fill.symbol)
        old, entry = position.qty, position.entry
        delta = fill.qty if fill.side == "buy" else -fill.qty
        new = old + delta
        if abs(new) <= FLAT * max(abs(old), abs(delta)):
            new = 0.0
        realised = 0.0
        if old == 0 or (old > 0) == (delta > 0):
            entry = (abs(old) * entry + abs(delta) * fill.price) / abs(new)
        else:
            closed = min(abs(delta), abs(old))
            side = 1.0 if old > 0 else -1.0
            realised = side * closed * instrument.contract_size * (fill.price - entry)
            if new == 0:
                entry = 0.0
            elif (new > 0) != (old > 0):
                entry = fill.price
        _credit(account.wallet, settle, realised)
        _credit(account.wallet, fill.fee_asset or settle, -fill.fee)
        isolated = position.isolated if old != 0 else account.isolated_mode
        if isolated:
            self._isolated_margin_on_fill(account, fill, position, old, new)
        position.qty, position.entry = new, entry
        if old == 0 and new != 0:
            position.isolated = isolated
            if isolated and fill.symbol not in account.isolated_units:
                account.isolated_units.append(fill.symbol)
        if new == 0:
            position.margin = 0.0

    def _isolated_margin_on_fill(
        self, account: Account, fill: Fill, position: Position, old: float, new: float
    ) -> None:
        """Reducing releases the same fraction of the allocated margin; opening or
        increasing allocates the initial margin of the added size at the fill price."""
        instrument = self.instruments[fill.symbol]
        kept = old
        if old != 0:
            if new == 0 or (new > 0) != (old > 0):
                kept = 0.0
            elif abs(new) < abs(old):
                kept = new
            released = position.margin * (1.0 - abs(kept) / abs(old))
            self._move_to_position(account, fill.symbol, position, -released)
        if abs(new) > abs(kept):
            im_new, _ = margins(instrument, new, fill.price, position.leverage)
            im_kept, _ = margins(instrument, kept, fill.price, position.leverage)
            self._move_to_position(account, fill.symbol, position, im_new - im_kept)

    # ------------------------------------------------------------------ figures

    def units(self, name: str) -> list[Unit]:
        """The account's cross unit, then one unit per symbol ever opened isolated."""
        account = self.accounts[name]
        collateral = 0.0
        collateral_terms = 0.0
        for asset, balance in account.wallet.items():
            worth = balance * self.value(asset)
            if balance > 0:
                worth = worth * (1.0 - self.haircut[asset])
            collateral += worth
            collateral_terms += abs(balance * self.value(asset))
        cross = Unit(None, collateral, 0.0, 0.0, 0.0, 0, collateral_terms)
        units = [cross]
        for symbol in account.isolated_units:
            position = account.positions[symbol]
            open_here = position.qty != 0 and position.isolated
            margin = position.margin * self.value(self.instruments[symbol].quote)
            units.append(Unit(symbol, margin if open_here else 0.0, 0.0, 0.0, 0.0, 0, abs(margin)))
        for symbol, position in account.positions.items():
            if position.qty == 0:
                continue
            unit = units[1 + account.isolated_units.index(symbol)] if position.isolated else cross
            upnl, initial, maintenance, notional = self.position_figures(symbol, position)
            unit.upnl += upnl
            unit.initial += initial
            unit.maintenance += maintenance
            unit.open_positions += 1
            unit.magnitude += abs(upnl) + notional
        return units

    def position_figures(self, symbol: str, position: Position) -> tuple:
        """(uPnL, IM, MM, notional) in the valuation asset."""
        instrument = self.instruments[symbol]
        mark = self.marks[symbol]
        value = self.value(instrument.quote)
        upnl = position.qty * instrument.contract_size * (mark - position.entry)
        initial, maintenance = margins(instrument, position.qty, mark, position.leverage)
        notional = abs(position.qty) * instrument.contract_size * mark
        return upnl * value, initial * value, maintenance * value, notional * value


def _credit(wallet: dict[str, float], asset: str, amount: float) -> None:
    wallet[asset] = wallet.get(asset, 0.0) + amount


def _event_id(event: LedgerEvent) -> str:
    if isinstance(event, Fill):
        return event.fill_id
    if isinstance(event, Transfer):
        return event.transfer_id
    if isinstance(event, Funding):
        return event.funding_id
    if isinstance(event, MarginSettings):
        return event.settings_id
    return event.adjustment_id
