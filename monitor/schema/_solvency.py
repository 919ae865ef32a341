"""Book-wide stress: scenarios, results, ADL queues and the solvency report."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from monitor.schema._common import MAX_ID_LENGTH

__all__ = [
    "AdlCandidate",
    "AdlQueue",
    "SolvencyReport",
    "StressContributor",
    "StressResult",
    "StressScenario",
]


class StressScenario(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A named book-wide stress (docs/solvency.md): every instrument whose ``base`` is a
    key of ``moves`` moves by that fraction (-0.3 = 30 % down), every other by
    ``default_move``; options revalue at the shocked underlying with the volatility
    shocked ``vol`` (Deribit's shape, ``engine.portfolio_margin`` defaults)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
    moves: dict[str, Annotated[float, msgspec.Meta(gt=-1)]] = {}
    default_move: Annotated[float, msgspec.Meta(gt=-1)] = 0.0
    vol: Literal["up", "same", "down"] = "same"


class StressContributor(msgspec.Struct, frozen=True, kw_only=True):
    """An account (or account group) and its bad debt under a scenario."""

    account: str
    bad_debt: float


class StressResult(msgspec.Struct, frozen=True, kw_only=True):
    """The book under one scenario. ``bad_debt`` is the sum over margin units of
    ``max(0, -(equity + scenario P&L))``; ``bankrupt_accounts`` counts accounts with a
    unit whose shocked equity is below zero, and ``bankrupt`` lists the first of them
    (largest debt first, at most ``report_accounts``); ``coverage`` is the insurance
    fund over the bad debt (null when there is none)."""

    scenario: str
    bad_debt: float
    bankrupt_accounts: int
    coverage: float | None
    largest: tuple[StressContributor, ...]
    bankrupt: tuple[str, ...]
    bad_debt_by_underlying: dict[str, float]


class AdlCandidate(msgspec.Struct, frozen=True, kw_only=True):
    """One position in an auto-deleveraging queue: its score and rank quantile."""

    account: str
    qty: float
    score: float
    quantile: float


class AdlQueue(msgspec.Struct, frozen=True, kw_only=True):
    """Who would be deleveraged, first first, on one side of one instrument, to absorb
    ``shortfall`` (the bad debt beyond the fund carried by positions on the other side)."""

    symbol: str
    side: Literal["long", "short"]
    shortfall: float
    candidates: tuple[AdlCandidate, ...]


class SolvencyReport(
    msgspec.Struct, tag="solvency_report", tag_field="type", frozen=True, kw_only=True
):
    """Book-wide stress of the live book (topic ``solvency``; docs/solvency.md).

    ``cover2`` is the bad debt of the two largest account groups in the worst scenario
    (``cover2_groups``), ``cover2_coverage`` the fund over it (null when it is 0).
    ``adl_candidates`` holds the queues of the worst scenario when its bad debt exceeds
    the fund (empty otherwise). ``seconds`` is how long the computation took.
    """

    ts: int
    accounts: int
    units: int
    insurance_fund: float
    scenarios: tuple[StressResult, ...]
    worst_scenario: str | None
    cover2: float
    cover2_groups: tuple[str, ...]
    cover2_coverage: float | None
    adl_candidates: tuple[AdlQueue, ...]
    seconds: float = 0.0
