"""Price guards: keep stale or implausible prices from liquidating anyone.

A tick is *stale* when its own event time is more than ``max_age_ms`` behind the
guard's clock; it is dropped (a fresher tick of the instrument replaces it). A tick
is *out of band* when it moves more than ``band`` (a fraction) away from the last
accepted price of its instrument; it is held, and it is accepted only when a later
tick of the same instrument confirms the move (lands within ``band`` of the held
price). A held tick that goes stale expires: it is dropped and reported. The first
price ever seen for an instrument is accepted as is, even if old (the compacted
price table at start-up): there is nothing to compare it with, and no holder of the
instrument can be valued without it.

The clock is the newest tick event time seen, but never later than ``now_ms`` (the
caller's wall clock): one tick stamped in the future (microseconds instead of
milliseconds, a wrong year) cannot make every correct tick look stale, and a host
clock running ahead of the feed changes nothing (the ticks' own times are then the
smaller). The service rejects ticks further in the future than its clock-skew
allowance before they get here.

The accepted marks survive a restart: :meth:`PriceGuard.restore` takes the references
saved by the last run (``liqmon-state``), so a held price at the head of the compacted
table is held again rather than accepted as a first price.

Pure: time comes from the ticks and the caller, never from a clock read here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Literal, NamedTuple

import msgspec

from monitor.schema import PriceTick

__all__ = ["Conflation", "GuardDecision", "HoldReason", "PriceGuard"]

HoldReason = Literal["stale", "out_of_band"]
_TS = attrgetter("ts")


class Conflation(NamedTuple):
    """A run of ticks conflated: the last tick per symbol (symbols in the order first
    seen) and the newest timestamp. The intake builds it per chunk while it checks the
    chunk's ticks (``monitor.intake``), so a cycle's screen does not walk them again."""

    last: dict[str, PriceTick]
    newest: int

    @classmethod
    def of(cls, ticks: Sequence[PriceTick]) -> Conflation:
        """The conflation of ``ticks`` (at least one)."""
        return cls({tick.symbol: tick for tick in ticks}, max(map(_TS, ticks)))

    @classmethod
    def merged(cls, runs: Iterable[Conflation]) -> Conflation:
        """The conflation of consecutive runs joined in order: what :meth:`of` gives
        for their ticks put together."""
        runs = [run for run in runs if run.last]  # an empty run has no newest tick
        last: dict[str, PriceTick] = {}
        for run in runs:
            last.update(run.last)  # keeps a symbol where first seen, takes its last tick
        return cls(last, max((run.newest for run in runs), default=0))


class GuardDecision(msgspec.Struct, frozen=True, kw_only=True):
    """What the guard made of one cycle's ticks.

    ``expired`` are held ticks that went stale without being confirmed: never used.
    """

    accepted: tuple[PriceTick, ...]
    held: tuple[tuple[PriceTick, HoldReason], ...]
    conflated: int
    expired: tuple[PriceTick, ...] = ()


class PriceGuard:
    """Screens each cycle's ticks; keeps the last accepted and the held tick per instrument."""

    def __init__(self, max_age_ms: int, band: float) -> None:
        if max_age_ms <= 0 or not math.isfinite(band) or band <= 0:
            raise ValueError("max_age_ms and band must be positive")
        self._max_age_ms = max_age_ms
        self._band = band
        self._accepted: dict[str, PriceTick] = {}
        self._held: dict[str, PriceTick] = {}
        self._changed: dict[str, PriceTick] = {}  # accepted since the last take_changed()
        self.newest_ts = 0

    def restore(self, references: Sequence[PriceTick]) -> None:
        """Take accepted marks saved by an earlier run as the references to screen against."""
        for tick in references:
            current = self._accepted.get(tick.symbol)
            if current is None or current.ts <= tick.ts:
                self._accepted[tick.symbol] = tick
            if tick.ts > self.newest_ts:
                self.newest_ts = tick.ts

    def take_changed(self) -> list[PriceTick]:
        """The accepted ticks that replaced a reference since the last call (to save them)."""
        changed = list(self._changed.values())
        self._changed.clear()
        return changed

    def references(self) -> list[PriceTick]:
        """Every instrument's last accepted tick."""
        return list(self._accepted.values())

    @property
    def held_count(self) -> int:
        """Instruments whose newest tick is currently held back."""
        return len(self._held)

    def accepted_ts(self) -> dict[str, int]:
        """Event time of the last accepted tick per instrument (for the price-age gauge)."""
        return {symbol: tick.ts for symbol, tick in self._accepted.items()}

    def screen(
        self,
        ticks: Sequence[PriceTick],
        now_ms: int | None = None,
        conflation: Conflation | None = None,
    ) -> GuardDecision:
        """Conflate ``ticks`` (in arrival order) and decide which prices the engine may use.

        Within one batch the last tick per instrument wins, but the tick before it is
        a candidate confirmation for an out-of-band move. Per tick this costs one dict
        store and one comparison; the earlier ticks are looked at only for a symbol
        whose last tick is out of band. ``now_ms`` (wall clock) caps the guard's clock;
        None trusts the ticks. ``conflation``, when given, is ``Conflation.of(ticks)``
        built by the caller.
        """
        if not ticks:
            return GuardDecision(accepted=(), held=(), conflated=0)
        last, newest = conflation if conflation is not None else Conflation.of(ticks)
        if now_ms is not None:
            newest = min(newest, now_ms)
        if newest > self.newest_ts:
            self.newest_ts = newest
        accepted: list[PriceTick] = []
        held: list[tuple[PriceTick, HoldReason]] = []
        for symbol, tick in last.items():
            reason = self._judge(symbol, tick, ticks)
            if reason is None:
                self._accepted[symbol] = tick
                self._changed[symbol] = tick
                self._held.pop(symbol, None)
                accepted.append(tick)
            else:
                held.append((tick, reason))
        expired = self._drop_stale_holds()
        conflated = len(ticks) - len(last)
        return GuardDecision(
            accepted=tuple(accepted), held=tuple(held), conflated=conflated, expired=expired
        )

    def _judge(self, symbol: str, tick: PriceTick, batch: Sequence[PriceTick]) -> HoldReason | None:
        reference = self._accepted.get(symbol)
        if reference is None:
            return None
        if tick.ts < self.newest_ts - self._max_age_ms:
            return "stale"
        if tick.mark_iv is not None:  # an option marked by its vol: no price band
            return None
        if self._within_band(tick.mark_price, reference.mark_price):
            return None
        if self._within_band(tick.mark_price, self._walk(batch, symbol, reference.mark_price)):
            return None  # a steady move in in-band steps (100, 92, 85, 78, 72), not a jump
        previous = _before_last(batch, symbol)
        candidate = previous if previous is not None else self._held.get(symbol)
        if (
            candidate is not None
            and candidate.ts <= tick.ts
            and candidate.ts >= self.newest_ts - self._max_age_ms
            and not self._within_band(candidate.mark_price, reference.mark_price)
            and self._within_band(tick.mark_price, candidate.mark_price)
        ):
            return None
        self._held[symbol] = tick
        return "out_of_band"

    def _walk(self, batch: Sequence[PriceTick], symbol: str, reference: float) -> float:
        """The reference after the batch's earlier ticks of ``symbol`` that each moved
        within the band of it (a tick out of band does not move it)."""
        ticks = [t for t in batch if t.symbol == symbol][:-1]
        for earlier in ticks:
            if self._within_band(earlier.mark_price, reference):
                reference = earlier.mark_price
        return reference

    def _within_band(self, price: float, reference: float) -> bool:
        return abs(price - reference) <= self._band * reference

    def _drop_stale_holds(self) -> tuple[PriceTick, ...]:
        horizon = self.newest_ts - self._max_age_ms
        expired = tuple(t for t in self._held.values() if t.ts < horizon)
        for tick in expired:
            del self._held[tick.symbol]
        return expired


def _before_last(batch: Sequence[PriceTick], symbol: str) -> PriceTick | None:
    """The tick of ``symbol`` before its last one in ``batch``, if any."""
    found_last = False
    for tick in reversed(batch):
        if tick.symbol == symbol:
            if found_last:
                return tick
            found_last = True
    return None
