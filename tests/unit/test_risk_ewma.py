"""EWMA volatility: Hull's worked example, a plain-loop reference, bars in event time."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest

from monitor.risk import EwmaParams, EwmaState, EwmaVolatility, ewma_covariance, ewma_variance

pytestmark = pytest.mark.unit


def reference_ewma(returns: list[float], lam: float, warmup: int) -> list[float]:
    """Plain-loop EWMA: sample variance (n - 1) of the first ``warmup``, then the recursion."""
    out = [math.nan] * len(returns)
    if len(returns) < warmup:
        return out
    head = returns[:warmup]
    mean = sum(head) / warmup
    s2 = sum((r - mean) ** 2 for r in head) / (warmup - 1)
    out[warmup - 1] = s2
    for t in range(warmup, len(returns)):
        s2 = lam * s2 + (1 - lam) * returns[t] ** 2
        out[t] = s2
    return out


def test_one_step_matches_hulls_worked_example() -> None:
    # Hull, "Options, Futures, and Other Derivatives", EWMA example: lambda = 0.90,
    # yesterday's volatility 1 % a day, yesterday's return 2 %:
    # s2 = 0.90 x 0.01^2 + 0.10 x 0.02^2 = 0.00009 + 0.00004 = 0.00013, vol = 1.1402 %.
    # Seed two returns whose sample variance is 0.01^2: +-0.01/sqrt(2) (mean 0,
    # (0.00005 + 0.00005) / 1 = 0.0001).
    half = 0.01 / math.sqrt(2)
    s2 = ewma_variance(np.array([half, -half, 0.02]), lam=0.90, warmup=2)
    assert s2[1] == pytest.approx(0.0001, rel=1e-12)
    assert s2[2] == pytest.approx(0.00013, rel=1e-12)
    assert math.sqrt(s2[2]) == pytest.approx(0.011402, rel=1e-4)


def test_variance_path_matches_plain_loop_reference() -> None:
    rng = np.random.default_rng(7)
    returns = rng.standard_t(4, size=(400, 3)) * 0.01
    got = ewma_variance(returns, lam=0.94, warmup=30)
    for j in range(3):
        want = reference_ewma(list(returns[:, j]), 0.94, 30)
        np.testing.assert_allclose(got[:, j], want, rtol=1e-12, equal_nan=True)
    assert np.isnan(got[:29]).all()


def test_covariance_diagonal_is_the_variance_and_off_diagonal_follows_the_recursion() -> None:
    rng = np.random.default_rng(3)
    returns = rng.normal(0, 0.01, size=(120, 2))
    cov = ewma_covariance(returns, lam=0.94, warmup=30)
    np.testing.assert_allclose(
        np.diagonal(cov, axis1=1, axis2=2), ewma_variance(returns, 0.94, 30), equal_nan=True
    )
    a, b = returns[:30, 0], returns[:30, 1]
    c = sum((x - a.mean()) * (y - b.mean()) for x, y in zip(a, b, strict=True)) / 29
    for t in range(30, 120):
        c = 0.94 * c + 0.06 * returns[t, 0] * returns[t, 1]
    assert cov[-1, 0, 1] == pytest.approx(c, rel=1e-10)


def marks_for_closes(closes: list[float], bar_ms: int) -> tuple[list[int], list[float]]:
    """Two marks per bar (an early one, then the close), one bar after another."""
    ts: list[int] = []
    marks: list[float] = []
    for k, close in enumerate(closes):
        ts += [k * bar_ms + 5, k * bar_ms + bar_ms - 1]
        marks += [close * 1.5, close]
    return ts, marks


def test_stream_of_marks_gives_the_variance_of_bar_close_returns() -> None:
    rng = np.random.default_rng(11)
    closes = list(100 * np.exp(np.cumsum(rng.normal(0, 0.002, 80))))
    ts, marks = marks_for_closes(closes, 60_000)
    vol = EwmaVolatility(["BTC"], EwmaParams(warmup=30))
    # Feed in uneven batches: the bars and the result must not depend on batching.
    for lo, hi in ((0, 7), (7, 8), (8, 90), (90, len(ts))):
        vol.observe(np.zeros(hi - lo, dtype=np.intp), np.array(ts[lo:hi]), np.array(marks[lo:hi]))
    # The last bar is still open: returns are those of the first 79 closes.
    returns = [math.log(closes[k] / closes[k - 1]) for k in range(1, 79)]
    assert vol.variance[0] == pytest.approx(reference_ewma(returns, 0.94, 30)[-1], rel=1e-12)
    assert vol.returns[0] == 78
    annual = math.sqrt(reference_ewma(returns, 0.94, 30)[-1] * 365 * 24 * 60)
    assert vol.volatility_annualised()[0] == pytest.approx(annual, rel=1e-12)


def test_bars_without_marks_count_as_zero_returns() -> None:
    closes = [100.0, 101.0, 99.0, 100.5] * 10  # 40 bars
    ts, marks = marks_for_closes(closes, 1_000)
    # A gap of 5 empty bars before a final close of 103, then one more bar to close it.
    ts += [45_000 + 10, 46_000 + 10]
    marks += [103.0, 103.0]
    vol = EwmaVolatility(["X"], EwmaParams(warmup=30, bar_ms=1_000))
    vol.observe(np.zeros(len(ts), dtype=np.intp), np.array(ts), np.array(marks))
    returns = [math.log(closes[k] / closes[k - 1]) for k in range(1, 40)]
    returns += [0.0] * 5 + [math.log(103.0 / closes[-1])]
    assert vol.returns[0] == len(returns)
    assert vol.variance[0] == pytest.approx(reference_ewma(returns, 0.94, 30)[-1], rel=1e-12)


def test_a_gap_inside_the_warmup_seeds_from_the_zero_returns() -> None:
    ts = [0, 1_000, 40_000]  # 38 empty bars between the second and third mark
    vol = EwmaVolatility(["X"], EwmaParams(warmup=30, bar_ms=1_000))
    vol.observe(np.zeros(3, dtype=np.intp), np.array(ts), np.array([100.0, 110.0, 120.0]))
    returns = [math.log(1.1)] + [0.0] * 38
    assert vol.variance[0] == pytest.approx(reference_ewma(returns, 0.94, 30)[-1], rel=1e-12)


def test_underlyings_are_independent_and_late_marks_are_ignored() -> None:
    vol = EwmaVolatility(["A", "B"], EwmaParams(warmup=2, bar_ms=10))
    vol.observe(np.array([0, 1, 0, 1]), np.array([0, 0, 10, 25]), np.array([1.0, 2.0, 1.1, 2.2]))
    vol.observe(np.array([0, 1]), np.array([5, 31]), np.array([50.0, 2.0]))  # A's mark is late
    assert vol.late == 1
    assert vol.close.tolist() == [1.1, 2.0]
    assert vol.bar.tolist() == [1, 3]
    # A: its first bar closed with no earlier close, so no return yet. B: an empty bar 1
    # (a zero return), then bar 2 closed at 2.2: ln(2.2 / 2.0).
    assert vol.returns.tolist() == [0, 2]
    assert vol.variance[1] == pytest.approx(np.var([0.0, math.log(1.1)], ddof=1), rel=1e-12)


def test_state_round_trips_through_msgpack_and_continues_identically() -> None:
    rng = np.random.default_rng(5)
    n = 200
    ix = rng.integers(0, 3, n).astype(np.intp)
    ts = np.sort(rng.integers(0, 100 * 60_000, n))
    marks = 100 * np.exp(rng.normal(0, 0.01, n))
    whole = EwmaVolatility(["A", "B", "C"], EwmaParams(warmup=5))
    whole.observe(ix, ts, marks)
    first = EwmaVolatility(["A", "B", "C"], EwmaParams(warmup=5))
    first.observe(ix[:120], ts[:120], marks[:120])
    blob = msgspec.msgpack.encode(first.states())
    restored = EwmaVolatility.from_states(
        msgspec.msgpack.decode(blob, type=list[EwmaState]), EwmaParams(warmup=5)
    )
    restored.observe(ix[120:], ts[120:], marks[120:])
    for name in ("bar", "close", "prev_close", "returns", "mean", "m2", "variance"):
        np.testing.assert_array_equal(getattr(restored, name), getattr(whole, name))
    assert not np.isnan(whole.variance).any()


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="lambda"):
        EwmaParams(lam=1.0)
    with pytest.raises(ValueError, match="warmup"):
        EwmaParams(warmup=1)
