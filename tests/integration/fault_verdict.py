"""The verdict of the fault-injection proof (issue 12): a fault run's events against the
reference's.

:func:`compare` checks the fault run's events, as a read_committed reader sees them,
against the reference's. It imports nothing from the model under test: the events are
decoded as plain JSON objects, so a field the service adds (``collapsed``) is read when
it is there and counted as missing when it is not.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

HEALTHY = "healthy"
LEVELS = ("healthy", "margin_call", "liquidation", "bankrupt")


Unit = tuple[str, str | None]


def _unit(event: dict[str, Any]) -> Unit:
    return event["account"], event.get("symbol")


def _chains(events: Sequence[dict[str, Any]]) -> dict[Unit, list[dict[str, Any]]]:
    chains: dict[Unit, list[dict[str, Any]]] = {}
    for event in events:
        chains.setdefault(_unit(event), []).append(event)
    return chains


def _path(chain: Sequence[dict[str, Any]]) -> str:
    """A unit's events, for a failure message: state, tick time and figures of each."""
    return " | ".join(
        f"{e['previous_state']}->{e['state']} @{e['trigger_ts']} equity {e['equity']:.2f} "
        f"im {e['initial_margin']:.2f} mm {e['maintenance_margin']:.2f}"
        + (" collapsed" if e.get("collapsed") else "")
        for e in chain
    )


def _when(event: dict[str, Any]) -> str:
    return f"trigger {event['trigger']} @{event['trigger_ts']} detected {event['detected_ts']}" + (
        " collapsed" if event.get("collapsed") else ""
    )


def final_states(events: Sequence[dict[str, Any]]) -> dict[Unit, str]:
    return {unit: chain[-1]["state"] for unit, chain in _chains(events).items()}


@dataclass
class Verdict:
    """What a fault run did against the reference (each list: examples of a failure)."""

    reference_events: int
    fault_events: int
    accounts: int
    units: int
    final_differs: list[str]
    final_within_band: list[str]
    duplicate_ids: list[str]
    repeated_transitions: list[str]
    chain_gaps: list[str]
    skipping: int
    collapsed: int
    unflagged_skips: list[str]
    has_collapsed_field: bool
    ids_missing: int
    ids_extra: int
    novel: int
    # Accounts of the chain gaps and repeated transitions (for account_history).
    troubled: set[str] = field(default_factory=set)

    def summary(self) -> str:
        return (
            f"events in reference {self.reference_events}, in fault run {self.fault_events}; "
            f"accounts checked {self.accounts} ({self.units} margin units with events); "
            f"final state differs {len(self.final_differs)} (one level apart, the hysteresis "
            f"band's path dependence: {len(self.final_within_band)}); duplicate ids "
            f"{len(self.duplicate_ids)}; repeated transitions {len(self.repeated_transitions)}; "
            f"chain gaps {len(self.chain_gaps)}; collapsed {self.collapsed}; events skipping "
            f"levels vs the reference {self.skipping}, not flagged collapsed "
            f"{len(self.unflagged_skips)}"
            + ("" if self.has_collapsed_field else " (no event has a `collapsed` field)")
            + f"; transitions the reference never made {self.novel}"
            + f"; reference ids missing {self.ids_missing}, ids not in reference {self.ids_extra}"
        )


def compare(
    reference: Sequence[dict[str, Any]], fault: Sequence[dict[str, Any]], accounts: Sequence[str]
) -> Verdict:
    """Check the fault run's events of every margin unit (account, isolated symbol).

    An event *skips levels against the reference* when the reference's path of the unit
    (healthy, then each event's state) goes from its ``previous_state`` to its ``state``
    only through other states, never in one step: such an event must say ``collapsed``.
    A transition the reference never made at all is only counted (``novel``): cycles
    batch ticks differently from run to run, and a reference cycle may have jumped over a
    level the fault run saw.
    """
    ref_chains, chains = _chains(reference), _chains(fault)
    ref_final, final = final_states(reference), final_states(fault)
    units = set(ref_chains) | set(chains)
    account_set = set(accounts)
    assert {account for account, _ in units} <= account_set, "events of unknown accounts"
    differing = [
        u for u in sorted(units, key=str) if ref_final.get(u, HEALTHY) != final.get(u, HEALTHY)
    ]
    described = {
        u: f"{u}: reference {ref_final.get(u, HEALTHY)} after {_path(ref_chains.get(u, []))}, "
        f"fault run {final.get(u, HEALTHY)} after {_path(chains.get(u, []))}"
        for u in differing
    }
    # One level apart is hysteresis, not a fault: a unit whose figures end inside the band
    # of a threshold keeps the state it was in, and a run that did not see a dip (it was
    # down, or conflated the dip's ticks) keeps the state before it. Both judgements are
    # right for what each run observed; two levels apart is never explained by the band.
    within_band = [
        described[u]
        for u in differing
        if abs(LEVELS.index(ref_final.get(u, HEALTHY)) - LEVELS.index(final.get(u, HEALTHY))) == 1
    ]
    final_differs = [described[u] for u in differing if described[u] not in within_band]
    ids = Counter(e["event_id"] for e in fault)
    twice = {i for i, n in ids.items() if n > 1}
    duplicate_ids = [
        f"{e['event_id']} ({_unit(e)}: {_when(e)})" for e in fault if e["event_id"] in twice
    ]
    repeated, gaps, unflagged = [], [], []
    troubled: set[str] = set()
    skipping = collapsed = 0
    novel = 0
    for unit, chain in chains.items():
        ref_path = [HEALTHY, *(e["state"] for e in ref_chains.get(unit, []))]
        ref_pairs = set(itertools.pairwise(ref_path))
        ref_skipped = {
            (ref_path[i], ref_path[j])
            for i in range(len(ref_path))
            for j in range(i + 2, len(ref_path))
        } - ref_pairs
        last = HEALTHY
        before: tuple[str, str] | None = None
        for event in chain:
            pair = (event["previous_state"], event["state"])
            if pair == before:
                repeated.append(f"{unit}: {pair[0]} -> {pair[1]} twice in a row, {_when(event)}")
                troubled.add(unit[0])
            if event["previous_state"] != last:
                gaps.append(
                    f"{unit}: last published {last}, next event from {pair[0]}, {_when(event)}"
                )
                troubled.add(unit[0])
            if event.get("collapsed") is True:
                collapsed += 1
            if pair not in ref_pairs and pair not in ref_skipped:
                novel += 1
            if pair in ref_skipped:
                skipping += 1
                if event.get("collapsed") is not True:
                    unflagged.append(
                        f"{unit}: {pair[0]} -> {pair[1]} ({event['event_id']}, trigger "
                        f"{event['trigger']} @{event['trigger_ts']}, detected "
                        f"{event['detected_ts']}; reference {_path(ref_chains.get(unit, []))})"
                    )
            last, before = event["state"], pair
    ref_ids = {e["event_id"] for e in reference}
    return Verdict(
        reference_events=len(reference),
        fault_events=len(fault),
        accounts=len(account_set),
        units=len(units),
        final_differs=final_differs,
        final_within_band=within_band,
        duplicate_ids=duplicate_ids,
        repeated_transitions=repeated,
        chain_gaps=gaps,
        troubled=troubled,
        skipping=skipping,
        collapsed=collapsed,
        unflagged_skips=unflagged,
        has_collapsed_field=any("collapsed" in e for e in fault),
        ids_missing=len(ref_ids - set(ids)),
        ids_extra=len(set(ids) - ref_ids),
        novel=novel,
    )


def failures(verdict: Verdict) -> list[str]:
    """One line per broken property of issue 12, with the count and a few examples."""
    found = []
    for what, examples in (
        ("final state differs from the reference by two levels or more", verdict.final_differs),
        ("the same event_id published twice", verdict.duplicate_ids),
        ("the same transition twice in a row", verdict.repeated_transitions),
        ("previous_state is not the last published state", verdict.chain_gaps),
        ("skips levels against the reference without `collapsed`", verdict.unflagged_skips),
    ):
        if examples:
            found.append(f"{len(examples)} x {what}, e.g. {examples[:3]}")
    return found
