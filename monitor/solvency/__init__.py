"""Venue solvency: book-wide stress, insurance-fund coverage, Cover-2 and the ADL queue.

Pure (no I/O, no clock): :class:`BookCopier` copies what the stress needs from an engine
inside a cycle; :func:`stress_report` computes the :class:`monitor.schema.SolvencyReport`
from that copy with numba kernels that release the GIL (the service runs it in a worker
thread; :func:`warm_up` compiles them). See docs/solvency.md.
"""

from monitor.solvency._adl import account_quantiles, adl_queues, adl_scores, quantiles
from monitor.solvency._gate import CycleGate
from monitor.solvency._kernels import warm_up
from monitor.solvency._scenarios import default_scenarios, scenario_problem, worst_day
from monitor.solvency._state import (
    BookCopier,
    BookCopy,
    BookState,
    StressFigures,
    book_state,
    copy_book,
    state_of,
)
from monitor.solvency._stress import scenario_values, stress_report
from monitor.solvency._stresser import Stresser, account_groups

__all__ = [
    "BookCopier",
    "BookCopy",
    "BookState",
    "CycleGate",
    "StressFigures",
    "Stresser",
    "account_groups",
    "account_quantiles",
    "adl_queues",
    "adl_scores",
    "book_state",
    "copy_book",
    "default_scenarios",
    "quantiles",
    "scenario_problem",
    "scenario_values",
    "state_of",
    "stress_report",
    "warm_up",
    "worst_day",
]
