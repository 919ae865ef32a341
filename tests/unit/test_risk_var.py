"""VaR/ES of scenario P&L, the scenario sets, and the sparse scenario P&L product."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import scipy.sparse
from scipy import stats

from monitor.risk import (
    filtered_historical_returns,
    historical_returns,
    linear_value_change,
    monte_carlo_returns,
    monte_carlo_vol_moves,
    scenario_pnl,
    tail_size,
    var_es,
    var_es_of_positions,
)

pytestmark = pytest.mark.unit

# Hull, "Risk Management and Financial Institutions", historical simulation over 500
# scenarios: the five worst losses ($000s). 99% VaR = 5th worst = 253.385;
# ES = (477.841 + 345.435 + 282.204 + 277.041 + 253.385) / 5 = 1635.906 / 5 = 327.181.
HULL_WORST = (477.841, 345.435, 282.204, 277.041, 253.385)


def test_hull_worked_example_var_is_fifth_worst_and_es_the_mean_of_five() -> None:
    rng = np.random.default_rng(1)
    losses = np.concatenate([HULL_WORST, rng.uniform(-300, 250, 495)])
    rng.shuffle(losses)
    value_at_risk, es = var_es(-losses, 0.99)
    assert value_at_risk == pytest.approx(253.385)
    assert es == pytest.approx(327.181, abs=5e-4)


def test_tail_size_is_floor_of_scenarios_times_tail_probability() -> None:
    assert tail_size(500, 0.99) == 5
    assert tail_size(10_000, 0.975) == 250
    assert tail_size(1_000, 0.99) == 10
    assert tail_size(50, 0.99) == 1  # at least one scenario


def plain_var_es(pnl: list[float], confidence: float) -> tuple[float, float]:
    losses = sorted((-x for x in pnl), reverse=True)
    k = max(1, math.floor(len(pnl) * (1 - confidence) + 1e-9))
    return losses[k - 1], sum(losses[:k]) / k


def test_var_es_per_account_matches_a_sorted_plain_reference() -> None:
    rng = np.random.default_rng(2)
    pnl = rng.standard_t(3, size=(20, 1_000))
    value_at_risk, es = var_es(pnl, 0.975)
    for row in range(20):
        want_var, want_es = plain_var_es(list(pnl[row]), 0.975)
        assert value_at_risk[row] == pytest.approx(want_var, rel=1e-12)
        assert es[row] == pytest.approx(want_es, rel=1e-12)


def test_linear_value_change_times_positions_is_qty_size_price_times_expm1() -> None:
    rng = np.random.default_rng(4)
    returns = rng.normal(0, 0.02, size=(50, 3))  # scenarios x instruments
    price = np.array([30_000.0, 2_000.0, 1.5])
    size = np.array([1.0, 0.1, 100.0])
    qty = [[2.0, 0.0, -5.0], [0.0, -10.0, 0.0], [1.0, 1.0, 1.0]]
    positions = scipy.sparse.csr_array(np.array(qty))
    pnl = scenario_pnl(positions, linear_value_change(returns, price, size))
    assert pnl.shape == (3, 50)
    for a in range(3):
        for s in range(50):
            want = sum(
                qty[a][i] * size[i] * price[i] * (math.exp(returns[s, i]) - 1) for i in range(3)
            )
            assert pnl[a, s] == pytest.approx(want, rel=1e-12, abs=1e-9)


def test_chunked_var_of_positions_equals_dense_var_of_the_pnl() -> None:
    rng = np.random.default_rng(8)
    dense = rng.normal(0, 1, size=(3_000, 4)) * (rng.random((3_000, 4)) < 0.5)
    change = rng.normal(0, 10, size=(4, 2_000))
    value_at_risk, es = var_es_of_positions(scipy.sparse.csr_array(dense), change, 0.99)
    want_var, want_es = var_es(dense @ change, 0.99)
    np.testing.assert_allclose(value_at_risk, want_var, rtol=1e-12)
    np.testing.assert_allclose(es, want_es, rtol=1e-12)


def test_historical_returns_are_the_last_overlapping_horizon_returns() -> None:
    log_prices = np.log(np.array([[100.0], [101.0], [99.0], [102.0], [103.0], [100.0]]))
    got = historical_returns(log_prices, horizon=2, window=3)
    want = [math.log(102 / 101), math.log(103 / 99), math.log(100 / 102)]
    np.testing.assert_allclose(got[:, 0], want, rtol=1e-12)
    with pytest.raises(ValueError, match="need 7 prices"):
        historical_returns(log_prices, horizon=2, window=5)


def test_filtered_returns_rescale_each_return_to_todays_volatility() -> None:
    returns = np.array([[0.01, -0.02], [0.03, 0.01]])
    vol_then = np.array([[0.01, 0.02], [0.03, 0.04]])
    got = filtered_historical_returns(returns, vol_then, np.array([0.02, 0.01]))
    np.testing.assert_allclose(got, [[0.02, -0.01], [0.02, 0.0025]])
    flat = filtered_historical_returns(returns, np.zeros((2, 2)), np.array([0.02, 0.01]))
    np.testing.assert_array_equal(flat, returns)


COV = np.array([[4e-4, 1.2e-4], [1.2e-4, 1e-4]])


def test_monte_carlo_is_reproducible_from_the_seed() -> None:
    a = monte_carlo_returns(COV, 1_000, np.random.default_rng(42), dof=5)
    b = monte_carlo_returns(COV, 1_000, np.random.default_rng(42), dof=5)
    c = monte_carlo_returns(COV, 1_000, np.random.default_rng(43), dof=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_monte_carlo_returns_have_the_ewma_covariance_and_t_tails() -> None:
    draws = monte_carlo_returns(COV, 400_000, np.random.default_rng(9), dof=5, horizon=4)
    np.testing.assert_allclose(np.cov(draws, rowvar=False), 4 * COV, rtol=0.05)
    # Standardised t(5) has excess kurtosis 6 / (5 - 4) = 6; a normal has 0.
    assert stats.kurtosis(draws[:, 0]) > 3


def test_monte_carlo_var_error_shrinks_like_one_over_sqrt_n() -> None:
    # One normal underlying, a long of 1 unit at 100: the exact 99% VaR is
    # 100 x (1 - exp(-z_0.99 x sigma)).
    sigma = 0.02
    exact = 100 * (1 - math.exp(-stats.norm.ppf(0.99) * sigma))
    cov = np.array([[sigma**2]])

    def rmse(paths: int) -> float:
        errors = []
        for seed in range(60):
            r = monte_carlo_returns(cov, paths, np.random.default_rng(seed), dof=math.inf)
            change = linear_value_change(r, np.array([100.0]), np.ones(1))
            pnl = scenario_pnl(np.array([[1.0]]), change)
            errors.append((var_es(pnl, 0.99)[0][0] - exact) ** 2)
        return math.sqrt(statistics.fmean(errors))

    small, large = rmse(1_000), rmse(16_000)
    # 16x the paths: the error should shrink about 4x (sqrt 16).
    assert 2.5 < small / large < 6.5


def test_vol_moves_repeat_with_the_seed_and_leave_the_returns_alone() -> None:
    rng = np.random.default_rng(42)
    returns = monte_carlo_returns(COV, 1_000, rng, dof=5)
    moves = monte_carlo_vol_moves(returns, COV, rng, 0.06, -0.5)
    again_rng = np.random.default_rng(42)
    again = monte_carlo_returns(COV, 1_000, again_rng, dof=5)
    np.testing.assert_array_equal(again, returns)
    np.testing.assert_array_equal(monte_carlo_vol_moves(again, COV, again_rng, 0.06, -0.5), moves)
    assert moves.shape == returns.shape


def test_vol_moves_have_the_vol_of_vol_and_the_spot_vol_correlation() -> None:
    rng = np.random.default_rng(5)
    horizon = 4
    returns = monte_carlo_returns(COV, 200_000, rng, dof=math.inf, horizon=horizon)
    moves = monte_carlo_vol_moves(returns, COV, rng, 0.05, -0.6, horizon)
    np.testing.assert_allclose(moves.std(axis=0), 0.05 * math.sqrt(horizon), rtol=0.01)
    for series in range(2):
        rho = stats.pearsonr(returns[:, series], moves[:, series]).statistic
        assert rho == pytest.approx(-0.6, abs=0.01)


def test_no_vol_of_vol_holds_the_volatility_and_bad_settings_are_refused() -> None:
    rng = np.random.default_rng(1)
    returns = monte_carlo_returns(COV, 100, rng)
    assert not monte_carlo_vol_moves(returns, COV, rng, 0.0, -0.5).any()
    with pytest.raises(ValueError, match="vol_of_vol"):
        monte_carlo_vol_moves(returns, COV, rng, -0.1, 0.0)
    with pytest.raises(ValueError, match="correlation"):
        monte_carlo_vol_moves(returns, COV, rng, 0.1, 1.5)
