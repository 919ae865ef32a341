"""Replayed events against what was published: missing, extra and different, by event id.

Events are matched by ``event_id`` (deterministic: account, unit, sequence and state, or
for a ``margin_parameters`` event the underlying and its bar), then compared field by
field on their JSON form, so a float must agree to the last bit, as a deterministic
engine gives it. A published event seen twice alike (an at-least-once repeat) counts
once; a second copy that differs is compared too.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from monitor.replay._pipeline import Published
from monitor.schema import MarginParameters
from streams import TopicPartition

__all__ = ["Comparison", "Difference", "Scope", "compare", "within_scope", "within_span"]


class Difference(msgspec.Struct, frozen=True, kw_only=True):
    """One field of one event that differs: its value as published and as replayed."""

    event_id: str
    field: str
    expected: Any
    replayed: Any


class Comparison(msgspec.Struct, kw_only=True):
    """The outcome of one comparison; ``clean`` when nothing is missing, extra or different."""

    expected: int
    replayed: int
    missing: list[Published]
    extra: list[Published]
    different: list[Difference]
    repeats: int = 0

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.different)

    def summary(self) -> str:
        """One line: the counts, and whether they agree."""
        verdict = "identical" if self.clean else "DIFFERENT"
        line = (
            f"{verdict}: {self.replayed} replayed events, {self.expected} published; "
            f"{len(self.missing)} missing, {len(self.extra)} extra, "
            f"{len({d.event_id for d in self.different})} different"
        )
        return line + (f" ({self.repeats} published repeats ignored)" if self.repeats else "")

    def details(self, limit: int = 20) -> list[str]:
        """Up to ``limit`` lines naming what differs."""
        lines = [f"missing  {_describe(e)}" for e in self.missing[:limit]]
        lines += [f"extra    {_describe(e)}" for e in self.extra[: max(0, limit - len(lines))]]
        for d in self.different[: max(0, limit - len(lines))]:
            lines.append(
                f"differs  {d.event_id} {d.field}: published {_short(d.expected)}, "
                f"replayed {_short(d.replayed)}"
            )
        hidden = len(self.missing) + len(self.extra) + len(self.different) - len(lines)
        if hidden > 0:
            lines.append(f"... and {hidden} more")
        return lines


def compare(
    expected: Iterable[Published], replayed: Iterable[Published], ignore: Sequence[str] = ()
) -> Comparison:
    """Diff ``replayed`` against ``expected`` by event id; ``ignore`` names fields not
    compared (e.g. ``detected_ts`` when the cycles' clocks were not recorded)."""
    published: dict[str, list[Published]] = {}
    for event in expected:
        published.setdefault(event.event_id, []).append(event)
    produced, _ = _by_id(replayed)
    skip = frozenset(ignore)
    different: list[Difference] = []
    repeats = 0
    for event_id, event in produced.items():
        copies = published.get(event_id, [])
        mine = msgspec.to_builtins(event)
        seen: list[Any] = []
        for other in copies:
            theirs = msgspec.to_builtins(other)
            if theirs in seen:  # an identical repeat
                repeats += 1
                continue
            seen.append(theirs)
            different.extend(_fields(event_id, theirs, mine, skip))
    return Comparison(
        expected=len(published),
        replayed=len(produced),
        missing=[c[0] for i, c in published.items() if i not in produced],
        extra=[e for i, e in produced.items() if i not in published],
        different=different,
        repeats=repeats + sum(len(c) - 1 for i, c in published.items() if i not in produced),
    )


def _fields(
    event_id: str, theirs: dict[str, Any], mine: dict[str, Any], skip: frozenset[str]
) -> list[Difference]:
    return [
        Difference(event_id=event_id, field=f, expected=theirs.get(f), replayed=mine.get(f))
        for f in dict.fromkeys([*theirs, *mine])
        if f not in skip and theirs.get(f) != mine.get(f)
    ]


def within_span(events: Iterable[Published], first_ms: int, last_ms: int) -> list[Published]:
    """The events detected between two cycle clocks (both included)."""
    return [e for e in events if first_ms <= e.detected_ts <= last_ms]


class Scope:
    """Whose events one instance of several published, and when: from each clock in
    ``ownership`` on, the accounts of the ledger partitions it owned (``partition_of``
    maps an account to its partition), and the parameter events while it owned
    ``first`` (the first ledger partition) or none."""

    def __init__(
        self,
        ownership: Sequence[tuple[int, frozenset[TopicPartition]]],
        partition_of: Mapping[str, TopicPartition],
        first: TopicPartition,
    ) -> None:
        self._clocks = [clock for clock, _ in ownership]
        self._owned = [owned for _, owned in ownership]
        self._partition_of = partition_of
        self._first = first

    def published(self, event: Published) -> bool:
        """Whether the instance published ``event`` (by when it was detected)."""
        at = bisect.bisect_right(self._clocks, event.detected_ts) - 1
        owned = self._owned[at] if at >= 0 else frozenset()
        if isinstance(event, MarginParameters):
            return self._first in owned or not owned
        return self._partition_of.get(event.account) in owned


def within_scope(events: Iterable[Published], scope: Scope) -> list[Published]:
    """The events the instance of ``scope`` published."""
    return [e for e in events if scope.published(e)]


def _by_id(events: Iterable[Published]) -> tuple[dict[str, Published], int]:
    found: dict[str, Published] = {}
    repeats = 0
    for event in events:
        if event.event_id in found:
            repeats += 1
        else:
            found[event.event_id] = event
    return found, repeats


def _describe(event: Published) -> str:
    kind = getattr(event, "type", "margin_parameters")
    who = getattr(event, "account", None) or getattr(event, "underlying", "")
    return f"{event.event_id} {kind} {who} detected_ts={event.detected_ts}"


def _short(value: Any) -> str:
    text = msgspec.json.encode(value).decode()
    return text if len(text) <= 80 else text[:77] + "..."
