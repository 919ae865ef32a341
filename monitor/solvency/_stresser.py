"""The configured stress of a book: scenarios resolved for its underlyings, groups, report.

Used alike by the service (every ``solvency.interval_s``, in a worker thread), by
``liqmon stress`` and by ``liqmon evaluate --stress``, so the three give the same report
for the same book.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import msgspec
import numpy as np
from numpy.typing import NDArray

from monitor.book import NameIndex
from monitor.errors import ConfigError
from monitor.schema import PortfolioMarginParams, SolvencyReport, StressScenario
from monitor.solvency._adl import account_quantiles
from monitor.solvency._gate import OPEN, CycleGate
from monitor.solvency._scenarios import default_scenarios, scenario_problem, worst_day
from monitor.solvency._state import AccountNames, BookState
from monitor.solvency._stress import stress_report

__all__ = ["Stresser", "account_groups"]


def account_groups(
    accounts: Sequence[str], separator: str
) -> tuple[NDArray[np.intp], tuple[str, ...]] | None:
    """Each account's Cover-2 group: its id up to the first ``separator`` (the whole id
    when it has none). None when ``separator`` is empty (each account its own group)."""
    if not separator:
        return None
    prefixes = [name.split(separator, 1)[0] for name in accounts]
    names, group_of = np.unique(np.array(prefixes, dtype=object), return_inverse=True)
    return np.asarray(group_of, dtype=np.intp).reshape(-1), tuple(str(n) for n in names)


class Stresser:
    """Scenarios and report options, fixed for a book's underlyings."""

    def __init__(
        self,
        bases: Sequence[str],
        scenarios: Sequence[StressScenario] = (),
        *,
        history_file: str = "",
        group_separator: str = "",
        top: int = 10,
        report_accounts: int = 100,
        queue_length: int = 20,
        params: PortfolioMarginParams | None = None,
    ) -> None:
        chosen = list(scenarios) if scenarios else default_scenarios(bases)
        if history_file:
            day = worst_day(Path(history_file))
            moves = {base: move for base, move in day.moves.items() if base in bases}
            if not moves:
                raise ConfigError(
                    f"solvency.history_file: {history_file} has no column named after an "
                    f"underlying of the instruments ({', '.join(bases) or 'none'})"
                )
            chosen.append(msgspec.structs.replace(day, moves=moves))
        problem = scenario_problem(chosen, bases)
        if problem is not None:
            raise ConfigError(f"solvency.scenarios{problem}")
        self.scenarios = tuple(chosen)
        self.group_separator = group_separator
        self.top = top
        self.report_accounts = report_accounts
        self.queue_length = queue_length
        self.params = params if params is not None else PortfolioMarginParams()
        # Groups of a book's append-only account list, extended by its new accounts only.
        self._group_list: NameIndex | None = None
        self._group_of: NDArray[np.intp] = np.zeros(0, dtype=np.intp)
        self._group_index: dict[str, int] = {}

    def report(
        self, state: BookState, fund: float, ts: int, *, gate: CycleGate = OPEN
    ) -> SolvencyReport:
        """The solvency report of ``state`` (pure; run by one thread at a time), pausing
        while ``gate`` is closed."""
        groups = self._groups(state.accounts)
        return stress_report(
            state,
            self.scenarios,
            self.params,
            fund=fund,
            ts=ts,
            group_of=groups[0] if groups else None,
            group_names=groups[1] if groups else None,
            top=self.top,
            report_accounts=self.report_accounts,
            queue_length=self.queue_length,
            gate=gate,
        )

    def _groups(self, accounts: Sequence[str]) -> tuple[NDArray[np.intp], tuple[str, ...]] | None:
        """:func:`account_groups`, kept between reports of the same book's accounts so a
        report of a million accounts splits only the names of its new accounts."""
        if not isinstance(accounts, AccountNames) or not self.group_separator:
            return account_groups(accounts, self.group_separator)
        if accounts.names is not self._group_list:
            self._group_list, self._group_index = accounts.names, {}
            self._group_of = np.zeros(0, dtype=np.intp)
        index, separator = self._group_index, self.group_separator
        new = [
            index.setdefault(name.split(separator, 1)[0], len(index))
            for name in accounts[self._group_of.shape[0] :]
        ]
        if new:
            self._group_of = np.concatenate((self._group_of, np.array(new, dtype=np.intp)))
        return self._group_of[: len(accounts)], tuple(index)

    @staticmethod
    def quantiles(state: BookState, *, gate: CycleGate = OPEN) -> NDArray[np.float64]:
        """Each account's ADL rank quantile now (NaN: no candidate position)."""
        return account_quantiles(state, gate=gate)
