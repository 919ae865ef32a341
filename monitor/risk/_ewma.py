"""EWMA volatility (RiskMetrics) from marks, in event time.

The variance after each return ``r_t`` is ``s2_t = lambda * s2_{t-1} + (1 - lambda) * r_t^2``
(J.P. Morgan/Reuters, *RiskMetrics — Technical Document*, 4th ed. 1996, section 5.2.1,
``lambda = 0.94`` for daily data), seeded with the sample variance (``ddof=1``) of the
first ``warmup`` returns. Returns are log returns of bar closes; a bar is
``[k * bar_ms, (k + 1) * bar_ms)`` of event time and its close is its last mark. A bar with
no mark closes at the previous close, a zero return: in event time, an unchanged mark is
no move, and the result does not depend on how ticks were batched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec
import numpy as np
from numpy.typing import NDArray

__all__ = ["EwmaParams", "EwmaState", "EwmaVolatility", "ewma_covariance", "ewma_variance"]

_DAY_MS = 86_400_000


class EwmaParams(msgspec.Struct, frozen=True, kw_only=True):
    """Settings of the EWMA estimator: ``lam`` (decay), ``warmup`` (returns before the first
    estimate), ``bar_ms`` (bar length in event time) and the bars in a year (default: a
    365-day year of ``bar_ms`` bars, as crypto venues trade every day)."""

    lam: float = 0.94
    warmup: int = 30
    bar_ms: int = 60_000
    bars_per_year: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.lam < 1.0:
            raise ValueError(f"ewma lambda must be in (0, 1), got {self.lam}")
        if self.warmup < 2:
            raise ValueError(f"ewma warmup must be at least 2 returns, got {self.warmup}")
        if self.bar_ms <= 0:
            raise ValueError(f"bar length must be > 0 ms, got {self.bar_ms}")

    @property
    def annualisation(self) -> float:
        """Bars per year: the factor from per-bar to annual variance."""
        if self.bars_per_year is not None:
            return self.bars_per_year
        return 365.0 * _DAY_MS / self.bar_ms


class EwmaState(msgspec.Struct, frozen=True, kw_only=True):
    """One underlying's estimator state, as it would go into a changelog.

    ``bar`` is the open bar's index (``ts_ms // bar_ms``, -1 before any mark), ``close``
    its latest mark, ``prev_close`` the previous bar's close (NaN until a bar closed).
    ``returns`` counts returns seen; ``mean`` and ``m2`` are the warm-up's running mean and
    sum of squared deviations (Welford); ``variance`` is the per-bar EWMA variance, NaN
    until ``warmup`` returns were seen.
    """

    underlying: str
    bar: int = -1
    close: float = math.nan
    prev_close: float = math.nan
    returns: int = 0
    mean: float = 0.0
    m2: float = 0.0
    variance: float = math.nan


class EwmaVolatility:
    """EWMA volatility of many underlyings, updated from batches of marks (columnar).

    Row ``i`` is ``underlyings[i]``. ``observe`` takes a batch of marks of any mix of
    underlyings and applies every bar they close, vectorised across underlyings (the only
    Python loop is over the bars one batch spans per underlying, usually one or two).
    Marks older than an underlying's open bar are late and ignored (``late`` counts them).
    """

    def __init__(self, underlyings: Sequence[str], params: EwmaParams | None = None) -> None:
        self.params = params or EwmaParams()
        self.underlyings = tuple(underlyings)
        n = len(self.underlyings)
        self.bar: NDArray[np.int64] = np.full(n, -1, dtype=np.int64)
        self.close: NDArray[np.float64] = np.full(n, np.nan)
        self.prev_close: NDArray[np.float64] = np.full(n, np.nan)
        self.returns: NDArray[np.int64] = np.zeros(n, dtype=np.int64)
        self.mean: NDArray[np.float64] = np.zeros(n)
        self.m2: NDArray[np.float64] = np.zeros(n)
        self.variance: NDArray[np.float64] = np.full(n, np.nan)
        self.late = 0

    # ------------------------------------------------------------------ state

    def states(self) -> list[EwmaState]:
        """Every underlying's state as a Struct (for a changelog or a report)."""
        return [
            EwmaState(
                underlying=name,
                bar=int(self.bar[i]),
                close=float(self.close[i]),
                prev_close=float(self.prev_close[i]),
                returns=int(self.returns[i]),
                mean=float(self.mean[i]),
                m2=float(self.m2[i]),
                variance=float(self.variance[i]),
            )
            for i, name in enumerate(self.underlyings)
        ]

    @classmethod
    def from_states(
        cls, states: Sequence[EwmaState], params: EwmaParams | None = None
    ) -> EwmaVolatility:
        """Rebuild an estimator from ``states()`` output."""
        self = cls([s.underlying for s in states], params)
        for i, s in enumerate(states):
            self.bar[i], self.close[i], self.prev_close[i] = s.bar, s.close, s.prev_close
            self.returns[i], self.mean[i], self.m2[i] = s.returns, s.mean, s.m2
            self.variance[i] = s.variance
        return self

    def volatility_per_bar(self) -> NDArray[np.float64]:
        """Per-bar volatility (sqrt of the EWMA variance); NaN while warming up."""
        return np.sqrt(self.variance)

    def volatility_annualised(self) -> NDArray[np.float64]:
        """Annualised volatility: per-bar volatility times sqrt(bars per year)."""
        return np.sqrt(self.variance * self.params.annualisation)

    # ------------------------------------------------------------------ updates

    def observe(
        self,
        underlying_ix: NDArray[np.intp],
        ts_ms: NDArray[np.int64],
        mark: NDArray[np.float64],
    ) -> None:
        """Apply a batch of marks (one row each). Within a bar the mark with the latest
        ``ts_ms`` is its close (ties: the later row). Marks must be finite and > 0."""
        ix = np.asarray(underlying_ix, dtype=np.intp)
        bar = np.asarray(ts_ms, dtype=np.int64) // self.params.bar_ms
        mark = np.asarray(mark, dtype=np.float64)
        on_time = bar >= self.bar[ix]
        self.late += int(on_time.size - np.count_nonzero(on_time))
        ts = np.asarray(ts_ms, dtype=np.int64)[on_time]
        ix, bar, mark = ix[on_time], bar[on_time], mark[on_time]
        if ix.size == 0:
            return
        order = np.lexsort((np.arange(ix.size), ts, ix))
        ix, bar, mark = ix[order], bar[order], mark[order]
        last = np.ones(ix.size, dtype=bool)
        last[:-1] = (ix[1:] != ix[:-1]) | (bar[1:] != bar[:-1])
        ix, bar, mark = ix[last], bar[last], mark[last]
        # Rank of each (underlying, bar) within its underlying: step k applies every
        # underlying's k-th bar at once.
        first = np.ones(ix.size, dtype=bool)
        first[1:] = ix[1:] != ix[:-1]
        starts = np.flatnonzero(first)
        rank = np.arange(ix.size) - np.repeat(starts, np.diff(np.append(starts, ix.size)))
        for k in range(int(rank.max()) + 1):
            step = rank == k
            self._advance(ix[step], bar[step], mark[step])

    def _advance(
        self, ix: NDArray[np.intp], bar: NDArray[np.int64], mark: NDArray[np.float64]
    ) -> None:
        """One mark per underlying (distinct ``ix``), at its open bar or a later one."""
        new_bar = bar > self.bar[ix]
        same = ix[~new_bar]
        self.close[same] = mark[~new_bar]
        ix, bar, mark = ix[new_bar], bar[new_bar], mark[new_bar]
        opened = self.bar[ix] >= 0
        # The open bar closes: its return, then one zero return per bar without marks.
        closing = ix[opened & ~np.isnan(self.prev_close[ix])]
        if closing.size:
            r = np.log(self.close[closing] / self.prev_close[closing])
            self._apply_returns(closing, r, np.ones(closing.size, dtype=np.int64))
        gap_ix = ix[opened]
        gaps = bar[opened] - self.bar[gap_ix] - 1
        if gap_ix.size:
            self._apply_returns(gap_ix, np.zeros(gap_ix.size), gaps)
        self.prev_close[gap_ix] = self.close[gap_ix]
        self.bar[ix] = bar
        self.close[ix] = mark

    def _apply_returns(
        self, ix: NDArray[np.intp], r: NDArray[np.float64], count: NDArray[np.int64]
    ) -> None:
        """Apply ``count`` returns equal to ``r`` to each underlying (``count`` > 1 only
        for zero returns, where the EWMA step is a decay by ``lambda^count``)."""
        lam, warmup = self.params.lam, self.params.warmup
        keep = count > 0
        ix, r, count = ix[keep], r[keep], count[keep]
        seen = self.returns[ix]
        # Warm-up part: Welford's merge of ``take`` identical values into the running stats.
        take = np.clip(warmup - seen, 0, count)
        warming = take > 0
        if warming.any():
            w = ix[warming]
            n_a, n_b = seen[warming].astype(np.float64), take[warming].astype(np.float64)
            n = n_a + n_b
            delta = r[warming] - self.mean[w]
            self.mean[w] += delta * n_b / n
            self.m2[w] += delta * delta * n_a * n_b / n
            seeded = w[n == warmup]
            self.variance[seeded] = self.m2[seeded] / (warmup - 1)
        rest = count - take
        warm = rest > 0
        if warm.any():
            w = ix[warm]
            decay = lam ** rest[warm].astype(np.float64)
            # For identical returns the sum of the recursion is geometric:
            # s2 <- lam^n s2 + (1 - lam^n) r^2.
            self.variance[w] = decay * self.variance[w] + (1.0 - decay) * r[warm] ** 2
        self.returns[ix] = seen + count


def ewma_variance(
    returns: NDArray[np.float64], lam: float = 0.94, warmup: int = 30
) -> NDArray[np.float64]:
    """Per-period EWMA variance after each row of ``returns`` (periods x series).

    Row ``t`` is the estimate once return ``t`` is known (the forecast for ``t + 1``):
    NaN for ``t < warmup - 1``, the sample variance (``ddof=1``) of the first ``warmup``
    returns at ``t = warmup - 1``, then ``lam * s2 + (1 - lam) * r_t^2``. Vectorised across
    series; a Python loop over periods only.
    """
    r = np.asarray(returns, dtype=np.float64)
    squeeze = r.ndim == 1
    r2d = r[:, None] if squeeze else r
    out = np.full(r2d.shape, np.nan)
    if r2d.shape[0] >= warmup:
        s2 = r2d[:warmup].var(axis=0, ddof=1)
        out[warmup - 1] = s2
        for t in range(warmup, r2d.shape[0]):
            s2 = lam * s2 + (1.0 - lam) * r2d[t] ** 2
            out[t] = s2
    return out[:, 0] if squeeze else out


def ewma_covariance(
    returns: NDArray[np.float64], lam: float = 0.94, warmup: int = 30
) -> NDArray[np.float64]:
    """Per-period EWMA covariance matrices after each row of ``returns`` (periods x series):
    ``S_t = lam * S_{t-1} + (1 - lam) * r_t r_t'``, seeded with the sample covariance of the
    first ``warmup`` rows (RiskMetrics, section 5.2.2). Shape (periods, series, series), NaN
    before the seed. The diagonal equals :func:`ewma_variance`.
    """
    r = np.asarray(returns, dtype=np.float64)
    periods, n = r.shape
    out = np.full((periods, n, n), np.nan)
    if periods >= warmup:
        s = np.atleast_2d(np.cov(r[:warmup], rowvar=False, ddof=1))
        out[warmup - 1] = s
        outer = r[:, :, None] * r[:, None, :]
        for t in range(warmup, periods):
            s = lam * s + (1.0 - lam) * outer[t]
            out[t] = s
    return out
