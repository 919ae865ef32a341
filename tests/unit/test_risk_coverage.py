"""Backtest statistics against published tables and scipy's independent G-tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from monitor.risk import (
    christoffersen,
    es_ratio,
    kupiec,
    recalibration_scale,
    traffic_light,
    transition_counts,
)

pytestmark = pytest.mark.unit


def test_kupiec_worked_example_250_days_at_99_percent_with_8_exceptions() -> None:
    # n = 250, x = 8, p = 0.01, x/n = 0.032:
    # ln L0 = 242 ln 0.99 + 8 ln 0.01 = -2.43218 - 36.84136 = -39.27354
    # ln L1 = 242 ln 0.968 + 8 ln 0.032 = -7.87061 - 27.53616 = -35.40677
    # LR = -2 (ln L0 - ln L1) = 7.73355; chi2(1) p-value = 0.00542.
    test = kupiec(250, 8, 0.01)
    assert test.lr == pytest.approx(7.73355, abs=1e-5)
    assert test.p_value == pytest.approx(0.00542, abs=1e-5)


@pytest.mark.parametrize(
    ("n", "x", "p"), [(250, 0, 0.01), (250, 2, 0.01), (1000, 37, 0.05), (510, 25, 0.025)]
)
def test_kupiec_equals_scipys_log_likelihood_goodness_of_fit(n: int, x: int, p: float) -> None:
    # Kupiec's LR is the G statistic of observed (x, n - x) against expected (np, n(1 - p)).
    if x == 0:
        g = 2 * n * math.log(1 / (1 - p))
    else:
        g, _ = stats.power_divergence([x, n - x], [n * p, n * (1 - p)], lambda_="log-likelihood")
    test = kupiec(n, x, p)
    assert test.lr == pytest.approx(g, rel=1e-10)
    assert test.p_value == pytest.approx(stats.chi2.sf(g, 1), rel=1e-10)


# Jorion, "Value at Risk" (3rd ed.), the 95% non-rejection regions of Kupiec's test
# (after Kupiec 1995): exception counts N with lo <= N <= hi are not rejected.
JORION_REGIONS = [
    (0.01, 510, 2, 10),
    (0.01, 1000, 5, 16),
    (0.025, 255, 3, 11),
    (0.025, 1000, 16, 35),
    (0.05, 255, 7, 20),
    (0.05, 510, 17, 35),
    (0.05, 1000, 38, 64),
    (0.10, 1000, 82, 119),
]


@pytest.mark.parametrize(("p", "n", "lo", "hi"), JORION_REGIONS)
def test_kupiec_non_rejection_regions_match_jorions_table(
    p: float, n: int, lo: int, hi: int
) -> None:
    accepted = [x for x in range(n + 1) if kupiec(n, x, p).p_value > 0.05]
    assert (accepted[0], accepted[-1]) == (lo, hi)


def test_basel_traffic_light_zones_for_250_days_at_99_percent() -> None:
    # Basel Committee (1996), Table 2: green 0-4, yellow 5-9, red 10 or more.
    zones = [traffic_light(250, x, 0.01) for x in range(13)]
    assert zones == ["green"] * 5 + ["yellow"] * 5 + ["red"] * 3


def test_traffic_light_generalises_by_the_binomial_probability() -> None:
    # 500 days at 99%: P(X <= 8) = 0.93289 green, P(X <= 9) = 0.96890 yellow;
    # P(X <= 14) = 0.99979 yellow, P(X <= 15) = 0.99994 red.
    assert traffic_light(500, 8, 0.01) == "green"
    assert traffic_light(500, 9, 0.01) == "yellow"
    assert traffic_light(500, 14, 0.01) == "yellow"
    assert traffic_light(500, 15, 0.01) == "red"


def test_transition_counts_of_a_hit_sequence() -> None:
    hits = np.array([0, 0, 0, 0, 1, 1, 1, 0, 0, 0], dtype=bool)
    assert transition_counts(hits) == (5, 1, 1, 2)


def test_christoffersen_worked_example_with_clustered_exceptions() -> None:
    # n00 = 5, n01 = 1, n10 = 1, n11 = 2: pi01 = 1/6, pi11 = 2/3, pi = 3/9.
    # ln L(pi)         = 3 ln(1/3) + 6 ln(2/3)                       = -5.72863
    # ln L(pi01, pi11) = 5 ln(5/6) + ln(1/6) + ln(1/3) + 2 ln(2/3) = -4.61291
    # LR_ind = 2 x (5.72863 - 4.61291) = 2.23144 (chi2(1) p-value 0.1352)
    counts = (5, 1, 1, 2)
    test = christoffersen(counts, observations=10, exceedances=3, rate=0.05)
    assert test.lr_ind == pytest.approx(2.23144, abs=1e-5)
    assert test.p_ind == pytest.approx(0.1352, abs=1e-4)
    assert test.lr_cc == pytest.approx(kupiec(10, 3, 0.05).lr + test.lr_ind, rel=1e-12)
    assert test.p_cc == pytest.approx(stats.chi2.sf(test.lr_cc, 2), rel=1e-12)


@pytest.mark.parametrize("counts", [(5, 1, 1, 2), (230, 8, 7, 4), (900, 40, 38, 3)])
def test_christoffersen_independence_equals_scipys_g_test(
    counts: tuple[int, int, int, int],
) -> None:
    # LR_ind is the likelihood-ratio (G) test of independence on the 2x2 transition table.
    n00, n01, n10, n11 = counts
    g, p, _, _ = stats.chi2_contingency(
        [[n00, n01], [n10, n11]], correction=False, lambda_="log-likelihood"
    )
    test = christoffersen(counts, observations=sum(counts) + 1, exceedances=n01 + n11, rate=0.01)
    assert test.lr_ind == pytest.approx(g, rel=1e-9)
    assert test.p_ind == pytest.approx(p, rel=1e-9)


def test_independent_exceptions_give_zero_lr_ind() -> None:
    # n00 = 4, n01 = 2, n10 = 2, n11 = 1: pi01 = pi11 = pi = 1/3, LR_ind = 0.
    hits = np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 0], dtype=bool)
    counts = transition_counts(hits)
    assert counts == (4, 2, 2, 1)
    assert christoffersen(counts, 10, 3, 0.01).lr_ind == pytest.approx(0.0, abs=1e-12)


def test_es_ratio_is_mean_loss_beyond_var_over_mean_es() -> None:
    loss = np.array([1.0, 5.0, 2.0, 9.0, 0.5])
    value_at_risk = np.array([3.0, 3.0, 3.0, 3.0, 3.0])
    es = np.array([4.0, 4.0, 4.0, 6.0, 4.0])
    # Exceptions on days 1 and 3: mean loss (5 + 9) / 2 = 7 over mean ES (4 + 6) / 2 = 5.
    assert es_ratio(loss, value_at_risk, es) == (2, pytest.approx(1.4))
    assert es_ratio(loss, value_at_risk * 10, es) == (0, None)


def test_recalibration_scale_leaves_the_allowed_number_of_exceedances() -> None:
    rng = np.random.default_rng(0)
    loss = rng.standard_t(3, 1_000)
    margin = np.full(1_000, 1.0)
    scale = recalibration_scale(loss, margin, 0.01)
    assert scale is not None
    assert np.count_nonzero(loss > scale * margin) == 10
    assert np.count_nonzero(loss > 0.999 * scale * margin) == 11
    assert kupiec(1_000, 10, 0.01).p_value > 0.05
    assert recalibration_scale(loss, np.zeros(1_000), 0.01) is None
