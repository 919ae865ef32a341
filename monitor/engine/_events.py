"""Margin events: their deterministic ids, their numbers and their trigger."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import msgspec
import numpy as np

from monitor.book import Book
from monitor.engine._contract_risk import greeks_by_underlying
from monitor.engine._risk import (
    UnitRows,
    margin_ratio,
    position_risks_of,
    reductions_of,
    units_rows,
)
from monitor.schema import MarginEvent, PriceTick, Trigger
from monitor.states import LIQUIDATION, STATE_NAMES, event_type

__all__ = [
    "MAX_EVENT_BYTES",
    "Transition",
    "Triggers",
    "build_event",
    "build_events",
    "event_id",
    "fit_positions",
    "price_triggers",
]

MAX_EVENT_BYTES = 900 * 1024
"""Longest encoded event published; Kafka's default record limit is 1 MiB."""


def event_id(account: str, symbol: str | None, sequence: int, new: int) -> str:
    """A stable id: blake2b of the account, the unit, its transition sequence number and
    the state entered.

    Not of the trigger: after a crash the same transition may be judged from another
    tick, and must keep its id. The sequence number is kept in ``liqmon-state`` with the
    unit's state, so a restarted monitor goes on counting where the last run stopped.
    """
    text = "\x1f".join((account, symbol or "", str(sequence), STATE_NAMES[new]))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


Triggers = Callable[[Sequence[int], UnitRows], list[tuple[Trigger, int]]]
"""``triggers(units, rows)``: the trigger and trigger time of each unit's event, given
the units and their rows."""


def price_triggers(
    book: Book, moved: dict[int, list[PriceTick]], revalued_assets: dict[int, PriceTick]
) -> Triggers:
    """:data:`Triggers` of a price cycle: a unit's transition is triggered by the newest
    of the cycle's ticks that changed its positions (``moved``, by instrument) or its
    wallet (``revalued_assets``, by asset). None such (a unit judged afresh at restore
    whose instruments lost their prices or were removed from the instruments file) gives
    ``("restore", 0)``. Every unit's at once: a crash's cycle has tens of thousands."""
    lowest = np.iinfo(np.int64).min
    newest = np.full(len(book.symbols), lowest, dtype=np.int64)
    for ix, ticks in moved.items():
        if ticks:
            newest[ix] = max(tick.ts for tick in ticks)
    table = book.units

    def triggers(units: Sequence[int], of: UnitRows) -> list[tuple[Trigger, int]]:
        if not units:
            return []
        stamp = newest[book.positions.instrument[of.rows]]
        best = np.full(len(units), lowest, dtype=np.int64)
        np.maximum.at(best, of.slot, stamp)
        found = np.bincount(of.slot, stamp != lowest, minlength=len(units)) > 0
        if revalued_assets:
            ids = np.array(units, dtype=np.intp)
            cross = table.row[ids] < 0
            balances = book.accounts.balance[table.account[ids]]
            for asset, tick in revalued_assets.items():
                holds = cross & (balances[:, asset] != 0.0)
                best = np.where(holds, np.maximum(best, tick.ts), best)
                found |= holds
        return [
            ("price", ts) if hit else ("restore", 0)
            for hit, ts in zip(found.tolist(), best.tolist(), strict=True)
        ]

    return triggers


Transition = tuple[int, int, int]
"""(unit, previous state, new state), as the engine's judging records them."""


def build_event(
    book: Book,
    unit: int,
    previous: int,
    new: int,
    trigger: Trigger,
    trigger_ts: int,
    now_ms: int,
    *,
    collapsed: bool = False,
) -> MarginEvent:
    """The event for a unit's transition ``previous -> new`` (state and sequence number
    already recorded). ``collapsed``: judged afresh after a restart or rebalance; an
    event that skips a level (say margin call to bankruptcy: the levels between were
    passed inside one cycle's ticks, or while nobody watched) is collapsed too."""
    return build_events(
        book, [(unit, previous, new)], lambda _units, _rows: [(trigger, trigger_ts)], now_ms,
        collapsed=collapsed,
    )[0]  # fmt: skip


def build_events(
    book: Book,
    transitions: Sequence[Transition],
    triggers: Triggers,
    now_ms: int,
    *,
    collapsed: bool = False,
) -> list[MarginEvent]:
    """:func:`build_event` of each transition, in order; ``triggers`` gives their
    triggers and trigger times. The positions' figures of every event are computed in
    one vectorised pass (:func:`position_risks_of`): a crash's cycle has tens of
    thousands of transitions."""
    units = [unit for unit, _, _ in transitions]
    of = units_rows(book, units)
    stamps = triggers(units, of)
    positions = position_risks_of(book, units, of)
    severe_at = [k for k, (_, _, new) in enumerate(transitions) if new >= LIQUIDATION]
    cuts = reductions_of(book, [units[k] for k in severe_at], of.pick(severe_at))
    cut_of = dict(zip(severe_at, cuts, strict=True))
    table = book.units
    ids = np.array(units, dtype=np.intp)  # each unit's figures read at once, as floats
    equities = (table.collateral[ids] + table.upnl[ids]).tolist()
    maintenances = table.maintenance[ids].tolist()
    initials = table.initial[ids].tolist()
    sequences = table.transitions[ids].tolist()
    names = book.account_names.of_ids(table.account[ids])
    with_options = book.contracts.has_options
    events = []
    for k, ((unit, previous, new), risks, (trigger, trigger_ts)) in enumerate(
        zip(transitions, positions, stamps, strict=True)
    ):
        account = names[k]
        symbol = book.unit_symbol(unit)
        equity, maintenance, sequence = equities[k], maintenances[k], sequences[k]
        severe = new >= LIQUIDATION
        events.append(
            MarginEvent(
                event_id=event_id(account, symbol, sequence, new),
                type=event_type(previous, new),
                account=account,
                state=STATE_NAMES[new],
                previous_state=STATE_NAMES[previous],
                equity=equity,
                initial_margin=initials[k],
                maintenance_margin=maintenance,
                margin_ratio=margin_ratio(equity, maintenance),
                trigger=trigger,
                trigger_ts=trigger_ts,
                detected_ts=now_ms,
                positions=risks,
                reductions=cut_of[k] if severe else (),
                shortfall=max(0.0, maintenance - equity) if severe else 0.0,
                symbol=symbol,
                sequence=sequence,
                collapsed=collapsed or abs(new - previous) > 1,
                greeks=greeks_by_underlying(book, of.of(k).tolist()) if with_options else {},
            )
        )
    return events


def fit_positions(
    event: MarginEvent, max_bytes: int, encode: Callable[[MarginEvent], bytes]
) -> MarginEvent:
    """``event`` with only as many positions as fit in ``max_bytes`` once encoded, those
    with the largest maintenance margin first; ``positions_omitted`` says how many were
    left out. The account's totals are unchanged: they cover every position."""
    ranked = sorted(event.positions, key=lambda p: (-p.maintenance_margin, p.symbol))
    keep = len(ranked)
    while keep > 0:
        keep //= 2
        trimmed = msgspec.structs.replace(
            event, positions=tuple(ranked[:keep]), positions_omitted=len(ranked) - keep
        )
        if len(encode(trimmed)) <= max_bytes:
            return trimmed
    return msgspec.structs.replace(event, positions=(), positions_omitted=len(ranked))
