"""Backtest statistics of a margin (or VaR) model: how often and how badly losses
exceeded it, and whether that is consistent with the target coverage.

Sources:

* Kupiec proportion-of-failures: P. Kupiec, "Techniques for verifying the accuracy of risk
  measurement models", *Journal of Derivatives* 3 (1995): with ``x`` exceedances in ``n``
  observations and target rate ``p``,
  ``LR = -2 ln[(1-p)^(n-x) p^x] + 2 ln[(1-x/n)^(n-x) (x/n)^x]`` ~ chi2(1).
* Christoffersen: P. Christoffersen, "Evaluating interval forecasts", *International
  Economic Review* 39 (1998): independence from the transition counts ``n_ij`` (state
  ``i`` followed by ``j``), ``LR_ind`` ~ chi2(1); conditional coverage
  ``LR_cc = LR_pof + LR_ind`` ~ chi2(2).
* Basel traffic light: Basel Committee, *Supervisory framework for the use of
  "backtesting" in conjunction with the internal models approach* (1996): green while
  the binomial probability of at most ``x`` exceptions is below 95 %, red from 99.99 %,
  yellow between (0-4 / 5-9 / 10+ for 250 observations at 99 %).
* ES backtest: the mean realised loss on the days a loss exceeded VaR, over the mean ES
  forecast on those days (1 when ES was right on average; above 1, ES understated the
  tail), in the spirit of McNeil and Frey (2000).
"""

from __future__ import annotations

import math
from typing import Literal

import msgspec
import numpy as np
from numpy.typing import NDArray
from scipy import special

__all__ = [
    "ChristoffersenTest",
    "KupiecTest",
    "TrafficLight",
    "christoffersen",
    "es_ratio",
    "kupiec",
    "recalibration_scale",
    "traffic_light",
    "transition_counts",
]

TrafficLight = Literal["green", "yellow", "red"]

# Basel's zone boundaries on the cumulative binomial probability of the exception count.
_YELLOW_FROM: float = 0.95
_RED_FROM: float = 0.9999
# Relative step above the boundary ratio in recalibration_scale.
_SCALE_MARGIN: float = 1e-9


class KupiecTest(msgspec.Struct, frozen=True, kw_only=True):
    """Kupiec's POF likelihood ratio and its chi2(1) p-value."""

    lr: float
    p_value: float


class ChristoffersenTest(msgspec.Struct, frozen=True, kw_only=True):
    """Christoffersen's independence (``lr_ind``, chi2(1)) and conditional coverage
    (``lr_cc``, chi2(2)) likelihood ratios with their p-values."""

    lr_ind: float
    p_ind: float
    lr_cc: float
    p_cc: float


def _bernoulli_loglik(failures: float, successes: float, rate: float) -> float:
    """``x ln(rate) + (n - x) ln(1 - rate)`` with ``0 ln 0 = 0``."""
    return float(special.xlogy(failures, rate) + special.xlog1py(successes, -rate))


def kupiec(observations: int, exceedances: int, rate: float) -> KupiecTest:
    """Kupiec's proportion-of-failures test of ``exceedances`` in ``observations`` against
    the target exceedance ``rate`` (``1 - confidence``)."""
    n, x = observations, exceedances
    if not 0 <= x <= n or n == 0:
        raise ValueError(f"need 0 <= exceedances <= observations > 0, got {x} of {n}")
    lr = -2.0 * (_bernoulli_loglik(x, n - x, rate) - _bernoulli_loglik(x, n - x, x / n))
    lr = max(lr, 0.0)
    return KupiecTest(lr=lr, p_value=float(special.chdtrc(1, lr)))


def transition_counts(hits: NDArray[np.bool_]) -> tuple[int, int, int, int]:
    """(n00, n01, n10, n11): how often a day without (0) or with (1) an exceedance was
    followed by one without or with."""
    h = np.asarray(hits, dtype=bool)
    before, after = h[:-1], h[1:]
    n11 = int(np.count_nonzero(before & after))
    n10 = int(np.count_nonzero(before & ~after))
    n01 = int(np.count_nonzero(~before & after))
    n00 = int(before.size - n11 - n10 - n01)
    return n00, n01, n10, n11


def christoffersen(
    counts: tuple[int, int, int, int], observations: int, exceedances: int, rate: float
) -> ChristoffersenTest:
    """Independence and conditional coverage from transition ``counts`` (see
    :func:`transition_counts`; counts of several series may be summed) and the totals."""
    n00, n01, n10, n11 = counts
    pi01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    pi = (n01 + n11) / (n00 + n01 + n10 + n11) if n00 + n01 + n10 + n11 else 0.0
    restricted = _bernoulli_loglik(n01 + n11, n00 + n10, pi)
    unrestricted = _bernoulli_loglik(n01, n00, pi01) + _bernoulli_loglik(n11, n10, pi11)
    lr_ind = max(-2.0 * (restricted - unrestricted), 0.0)
    lr_cc = kupiec(observations, exceedances, rate).lr + lr_ind
    return ChristoffersenTest(
        lr_ind=lr_ind,
        p_ind=float(special.chdtrc(1, lr_ind)),
        lr_cc=lr_cc,
        p_cc=float(special.chdtrc(2, lr_cc)),
    )


def traffic_light(observations: int, exceedances: int, rate: float) -> TrafficLight:
    """Basel zone of ``exceedances`` in ``observations`` at target ``rate``, from the
    binomial probability of that many or fewer exceptions under a correct model."""
    cumulative = float(special.bdtr(exceedances, observations, rate))
    if cumulative < _YELLOW_FROM:
        return "green"
    if cumulative < _RED_FROM:
        return "yellow"
    return "red"


def es_ratio(
    loss: NDArray[np.float64], value_at_risk: NDArray[np.float64], es: NDArray[np.float64]
) -> tuple[int, float | None]:
    """(exceptions, ratio): the days ``loss > VaR`` and the mean loss on them over the
    mean ES forecast on them (None without exceptions)."""
    hit = loss > value_at_risk
    count = int(np.count_nonzero(hit))
    if count == 0:
        return 0, None
    forecast = float(es[hit].mean())
    return count, (float(loss[hit].mean()) / forecast if forecast > 0 else math.inf)


def recalibration_scale(
    loss: NDArray[np.float64], margin: NDArray[np.float64], rate: float
) -> float | None:
    """The factor on the model's margin (its rates) that would have met the target
    coverage: the smallest ``s`` with at most ``floor(n x rate)`` days where
    ``loss > s x margin``. Margin is linear in the rates (tiered ``N x mmr - cum`` with
    ``cum`` derived from the rates; size-scaled; VaR/ES scale with the volatility), so
    scaling the rates by ``s`` scales the margin by ``s``. The factor is set a relative
    1e-9 above the boundary day's ratio, so that the day does not exceed again through
    rounding when the rates are scaled. Days with no margin (nothing held) are left out;
    None when none remain.
    """
    held = margin > 0
    if not held.any():
        return None
    ratio = np.sort(loss[held] / margin[held])[::-1]
    allowed = math.floor(ratio.size * rate + 1e-9)
    if allowed >= ratio.size:
        return 0.0
    return max(float(ratio[allowed]) * (1.0 + _SCALE_MARGIN), 0.0)
