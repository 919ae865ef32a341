"""What the changelog keeps of an account: its units' states and transition counts."""

from __future__ import annotations

from collections.abc import Iterable

from monitor.book import Book
from monitor.schema import AccountState, MarginEvent, UnitStates
from monitor.states import HEALTHY, STATE_NAMES

__all__ = ["CROSS_UNIT", "account_record", "records_of"]

CROSS_UNIT = ""
"""The key of an account's cross unit in :class:`monitor.schema.UnitStates`."""


def account_record(book: Book, account: str, ts: int) -> UnitStates:
    """``account``'s units that are not healthy, and the transition count of every unit
    that has had one, by ``""`` (cross) or symbol (isolated)."""
    ix = book.account_index.get(account)
    states: dict[str, AccountState] = {}
    transitions: dict[str, int] = {}
    if ix is not None:
        table = book.units
        for unit in book.units_of(ix):
            key = book.unit_symbol(unit) or CROSS_UNIT
            code = int(table.state[unit])
            if code != HEALTHY:
                states[key] = STATE_NAMES[code]
            count = int(table.transitions[unit])
            if count:
                transitions[key] = count
    return UnitStates(account=account, units=states, transitions=transitions, ts=ts)


def records_of(book: Book, events: Iterable[MarginEvent], ts: int) -> list[UnitStates]:
    """The records of the accounts that ``events`` concern, once each, in event order."""
    accounts = dict.fromkeys(event.account for event in events)
    return [account_record(book, account, ts) for account in accounts]
