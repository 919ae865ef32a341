"""Properties of monitor.risk: EWMA is deterministic in event time whatever the batching;
VaR/ES are positively homogeneous and ordered; coverage statistics stay in range."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.risk import (
    EwmaParams,
    EwmaVolatility,
    christoffersen,
    ewma_variance,
    kupiec,
    transition_counts,
    var_es,
)

PARAMS = EwmaParams(warmup=3, bar_ms=100)


@st.composite
def tick_streams(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    n = draw(st.integers(1, 120))
    ix = np.array(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)), dtype=np.intp)
    steps = draw(st.lists(st.integers(0, 250), min_size=n, max_size=n))
    ts = np.cumsum(np.array(steps, dtype=np.int64))
    marks = np.array(draw(st.lists(st.floats(50, 150), min_size=n, max_size=n)))
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, n - 1)), max_size=6))))
    return ix, ts, marks, cuts


def snapshot(vol: EwmaVolatility) -> list[np.ndarray]:
    return [vol.bar, vol.close, vol.prev_close, vol.returns, vol.mean, vol.m2, vol.variance]


@settings(max_examples=200, deadline=None)
@given(tick_streams())
def test_ewma_state_does_not_depend_on_how_ticks_were_batched(
    stream: tuple[np.ndarray, np.ndarray, np.ndarray, list[int]],
) -> None:
    ix, ts, marks, cuts = stream
    whole = EwmaVolatility(["A", "B", "C"], PARAMS)
    whole.observe(ix, ts, marks)
    pieces = EwmaVolatility(["A", "B", "C"], PARAMS)
    for part in np.split(np.arange(ix.size), cuts):
        pieces.observe(ix[part], ts[part], marks[part])
    for a, b in zip(snapshot(whole), snapshot(pieces), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15, equal_nan=True)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(50, 150), min_size=2, max_size=80))
def test_one_mark_per_bar_gives_the_variance_path_of_close_returns(closes: list[float]) -> None:
    vol = EwmaVolatility(["A"], PARAMS)
    ts = np.arange(len(closes), dtype=np.int64) * 100
    vol.observe(np.zeros(len(closes), dtype=np.intp), ts, np.array(closes))
    returns = np.diff(np.log(closes))[:-1]  # the last bar is still open
    path = ewma_variance(returns, PARAMS.lam, PARAMS.warmup)
    want = path[-1] if returns.size else np.nan
    np.testing.assert_allclose(vol.variance[0], want, rtol=1e-12, equal_nan=True)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=400),
    st.floats(0.5, 0.999),
    st.floats(0.01, 100),
)
def test_var_es_scale_with_the_position_and_es_is_at_least_var(
    pnl: list[float], confidence: float, scale: float
) -> None:
    values = np.array(pnl)
    value_at_risk, es = var_es(values, confidence)
    scaled_var, scaled_es = var_es(scale * values, confidence)
    np.testing.assert_allclose(scaled_var, scale * value_at_risk, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(scaled_es, scale * es, rtol=1e-9, atol=1e-6)
    assert es >= value_at_risk - 1e-9 * (1 + abs(value_at_risk))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), min_size=2, max_size=300), st.floats(0.001, 0.2))
def test_coverage_statistics_are_finite_and_p_values_in_range(
    hits: list[bool], rate: float
) -> None:
    h = np.array(hits)
    n, x = h.size, int(h.sum())
    pof = kupiec(n, x, rate)
    cc = christoffersen(transition_counts(h), n, x, rate)
    for lr, p in ((pof.lr, pof.p_value), (cc.lr_ind, cc.p_ind), (cc.lr_cc, cc.p_cc)):
        assert np.isfinite(lr)
        assert lr >= 0
        assert 0.0 <= p <= 1.0
    assert cc.lr_cc >= pof.lr
