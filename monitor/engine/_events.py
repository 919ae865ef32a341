"""Margin events: their deterministic ids, their numbers and their trigger."""

from __future__ import annotations

import hashlib

from monitor.book import Book
from monitor.engine._contract_risk import greeks_by_underlying
from monitor.engine._risk import margin_ratio, position_risks, reductions, unit_rows
from monitor.schema import MarginEvent, PriceTick, Trigger
from monitor.states import LIQUIDATION, STATE_NAMES, event_type

__all__ = ["build_event", "event_id", "price_trigger"]


def event_id(account: str, symbol: str | None, previous: int, new: int, trigger: str) -> str:
    """A stable id: blake2b of the account, the unit, the transition and the trigger.

    The trigger identity is ``ledger:<kind>:<id>`` of the ledger event, or
    ``price:<symbol>:<ts>:<mark>`` of the tick, so the same inputs give the same id.
    """
    text = "\x1f".join((account, symbol or "", STATE_NAMES[previous], STATE_NAMES[new], trigger))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def price_trigger(
    book: Book,
    unit: int,
    moved: dict[int, list[PriceTick]],
    revalued_assets: dict[int, PriceTick],
) -> PriceTick:
    """The tick that triggered a unit's transition: of the cycle's ticks that changed
    its positions or its wallet, the newest (ties: the smallest symbol)."""
    candidates = [
        tick
        for ix in book.positions.instrument[unit_rows(book, unit)].tolist()
        for tick in moved.get(ix, ())
    ]
    if book.units.row[unit] < 0:
        balances = book.accounts.balance[book.units.account[unit]]
        candidates.extend(tick for asset, tick in revalued_assets.items() if balances[asset])
    if not candidates:  # defensive: a unit judged on prices holds a moved mark or asset
        candidates = [tick for ticks in moved.values() for tick in ticks]
        candidates.extend(revalued_assets.values())
    return min(candidates, key=lambda tick: (-tick.ts, tick.symbol))


def build_event(
    book: Book,
    unit: int,
    previous: int,
    new: int,
    trigger: Trigger,
    trigger_ts: int,
    trigger_identity: str,
    now_ms: int,
) -> MarginEvent:
    """The event for a unit's transition ``previous -> new`` (state already recorded)."""
    table = book.units
    account = book.account_names[table.account[unit]]
    symbol = book.unit_symbol(unit)
    equity = float(table.collateral[unit] + table.upnl[unit])
    maintenance = float(table.maintenance[unit])
    severe = new >= LIQUIDATION
    return MarginEvent(
        event_id=event_id(account, symbol, previous, new, f"{trigger}:{trigger_identity}"),
        type=event_type(previous, new),
        account=account,
        state=STATE_NAMES[new],
        previous_state=STATE_NAMES[previous],
        equity=equity,
        initial_margin=float(table.initial[unit]),
        maintenance_margin=maintenance,
        margin_ratio=margin_ratio(equity, maintenance),
        trigger=trigger,
        trigger_ts=trigger_ts,
        detected_ts=now_ms,
        positions=position_risks(book, unit),
        reductions=reductions(book, unit) if severe else (),
        shortfall=max(0.0, maintenance - equity) if severe else 0.0,
        symbol=symbol,
        greeks=greeks_by_underlying(book, unit_rows(book, unit).tolist()),
    )
