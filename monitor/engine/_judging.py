"""The engine's judging: the state machine run over units, alone or in the same walk as
their revaluation, and the transitions it records (unit, previous state, new state).

:class:`~monitor.engine.Engine` inherits these; what to judge, and when, is the cycle's
business (``_engine``). The kernels are ``monitor.engine._judge`` (one fused pass, or
``classify`` with numpy) and ``monitor.engine._width_units.revalue_and_judge``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from monitor.book import Index
from monitor.engine import _kernels
from monitor.engine._config import EngineConfig
from monitor.engine._events import Transition
from monitor.engine._judge import judge, judge_range, judge_range_reference, judge_reference
from monitor.engine._views import EngineViews
from monitor.engine._width_units import revalue_and_judge

__all__ = ["EngineJudging"]


class EngineJudging(EngineViews):
    """The engine's judging (a base class of the engine, over its book and config)."""

    config: EngineConfig

    def _judge(self, units: Index | None) -> list[Transition]:
        """Run the state machine on ``units`` (None: all); record and return transitions
        (``monitor.engine._judge``: one fused pass, or ``classify`` with numpy)."""
        table = self.book.units
        n = table.size if units is None else units.shape[0]
        changed = np.empty(n, dtype=np.intp)
        previous = np.empty(n, dtype=np.int8)
        fused = _kernels.ENABLED
        rule = (
            self.config.margin_call_ratio,
            self.config.hysteresis,
            changed,
            previous,
        )
        columns = (table.state, table.transitions, table.figures, table.open_positions)
        if units is None:
            count = (judge_range if fused else judge_range_reference)(0, n, *columns, *rule)
        else:
            count = (judge if fused else judge_reference)(units, *columns, *rule)
        return self._transitions(changed, previous, count)

    def _revalue_and_judge(self, units: Index) -> list[Transition]:
        """``_bands.revalue`` (without collateral) and ``_judge`` of ``units`` in one walk
        (``monitor.engine._width_units.revalue_and_judge``): a banded book of linear
        contracts without portfolio accounts, on a tick that repriced no wallet asset."""
        book = self.book
        pos, table, layout = book.positions, book.units, book.models.layout
        n = units.shape[0]
        changed = np.empty(n, dtype=np.intp)
        previous = np.empty(n, dtype=np.int8)
        count = revalue_and_judge(
            units, table.head, pos.unit_next, pos.instrument, pos.qty, pos.entry, pos.leverage,
            book.mark, layout.contract_size, book.assets.value.take(book.settle_asset),
            layout.n_tiers, layout.floors, layout.mmr, layout.imr, layout.cum, layout.mm_slope,
            layout.im_slope, pos.figures, table.figures, table.state, table.transitions,
            table.open_positions, self.config.margin_call_ratio, self.config.hysteresis,
            changed, previous,
        )  # fmt: skip
        return self._transitions(changed, previous, count)

    def _transitions(
        self, changed: Index, previous: NDArray[np.int8], count: int
    ) -> list[Transition]:
        """(unit, previous state, new state) of the first ``count`` units judged to change."""
        if count == 0:
            return []
        new = self.book.units.state[changed[:count]]
        return list(
            zip(changed[:count].tolist(), previous[:count].tolist(), new.tolist(), strict=True)
        )
