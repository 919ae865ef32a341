"""Black-76 values, Greeks and implied volatility against vollib (an independent, well-known
implementation built on Jäckel's "Let's be rational"), put-call parity and finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
from vollib.black import black as oracle_value
from vollib.black.greeks import analytical as oracle
from vollib.black.implied_volatility import implied_volatility as oracle_iv

from monitor.models import black76, implied_vol, years_to_expiry

N = 3000


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    """Random forwards, strikes from deep out to deep in the money, expiries from minutes
    to three years, and volatilities from 1 % to 300 %."""
    rng = np.random.default_rng(76)
    forward = np.exp(rng.uniform(np.log(50.0), np.log(150_000.0), N))
    strike = forward * np.exp(rng.uniform(-1.5, 1.5, N))
    years = np.exp(rng.uniform(np.log(1e-4), np.log(3.0), N))
    vol = np.exp(rng.uniform(np.log(0.01), np.log(3.0), N))
    is_call = rng.random(N) < 0.5
    return {"forward": forward, "strike": strike, "years": years, "vol": vol, "is_call": is_call}


def _oracle(fn, inputs: dict[str, np.ndarray]) -> np.ndarray:
    out = np.empty(N)
    for i in range(N):
        flag = "c" if inputs["is_call"][i] else "p"
        f, k = float(inputs["forward"][i]), float(inputs["strike"][i])
        t, s = float(inputs["years"][i]), float(inputs["vol"][i])
        out[i] = fn(flag, f, k, t, 0.0, s)
    return out


def _close(got, expected, rtol, atol) -> None:
    """Element-wise |got - expected| <= atol + rtol |expected| (atol may be an array)."""
    bad = ~(np.abs(got - expected) <= atol + rtol * np.abs(expected))
    assert not bad.any(), (np.flatnonzero(bad)[:5], got[bad][:5], np.asarray(expected)[bad][:5])


def _ours(inputs: dict[str, np.ndarray]):
    return black76(
        inputs["forward"], inputs["strike"], inputs["years"], inputs["vol"], inputs["is_call"]
    )


def test_values_match_vollib_on_random_inputs(inputs) -> None:
    expected = _oracle(oracle_value, inputs)
    got = _ours(inputs).value
    # vollib computes F N(d1) - K N(d2) directly; both agree to rounding of the forward.
    _close(got, expected, rtol=1e-9, atol=1e-11 * inputs["forward"])


@pytest.mark.parametrize("greek", ["delta", "gamma", "vega", "theta"])
def test_greeks_match_vollib_on_random_inputs(inputs, greek: str) -> None:
    expected = _oracle(getattr(oracle, greek), inputs)
    got = getattr(_ours(inputs), greek)
    scale = {"delta": 1.0, "gamma": 1.0 / inputs["forward"], "vega": inputs["forward"] / 100}
    atol = scale.get(greek, inputs["forward"] / 365) * 1e-9
    _close(got, expected, rtol=1e-7, atol=atol)


def test_put_call_parity_holds_at_zero_rate(inputs) -> None:
    f, k, t, s = inputs["forward"], inputs["strike"], inputs["years"], inputs["vol"]
    call = black76(f, k, t, s, True)
    put = black76(f, k, t, s, False)
    _close(call.value - put.value, f - k, rtol=0, atol=1e-9 * f)
    np.testing.assert_allclose(call.delta - put.delta, 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(call.gamma, put.gamma, rtol=1e-12)
    np.testing.assert_allclose(call.vega, put.vega, rtol=1e-12)
    np.testing.assert_allclose(call.theta, put.theta, rtol=1e-12)


def test_greeks_match_finite_differences(inputs) -> None:
    # Away from expiry the value is smooth enough for central differences.
    keep = (inputs["years"] > 0.02) & (inputs["vol"] > 0.05)
    f, k = inputs["forward"][keep], inputs["strike"][keep]
    t, s, call = inputs["years"][keep], inputs["vol"][keep], inputs["is_call"][keep]
    assert keep.sum() > 1000
    greeks = black76(f, k, t, s, call)

    def value(ff=f, tt=t, ss=s):
        return black76(ff, k, tt, ss, call).value

    h = f * 1e-4
    delta = (value(ff=f + h) - value(ff=f - h)) / (2 * h)
    gamma = (value(ff=f + h) - 2 * value() + value(ff=f - h)) / (h * h)
    dv = 1e-5
    vega = (value(ss=s + dv) - value(ss=s - dv)) / (2 * dv) / 100
    dt = 1e-6
    theta = -(value(tt=t + dt) - value(tt=t - dt)) / (2 * dt) / 365
    np.testing.assert_allclose(greeks.delta, delta, rtol=1e-5, atol=1e-6)
    _close(greeks.gamma, gamma, rtol=1e-3, atol=1e-5 / f)
    _close(greeks.vega, vega, rtol=1e-5, atol=1e-9 * f)
    _close(greeks.theta, theta, rtol=1e-4, atol=1e-8 * f)


def test_expiry_and_zero_vol_give_intrinsic_value_and_step_delta() -> None:
    f = np.array([110.0, 90.0, 100.0, 110.0, 90.0, 100.0])
    call = np.array([True, True, True, False, False, False])
    for years, vol in ((0.0, 0.5), (1.0, 0.0)):
        result = black76(f, 100.0, years, vol, call)
        np.testing.assert_array_equal(result.value, [10.0, 0.0, 0.0, 0.0, 10.0, 0.0])
        np.testing.assert_array_equal(result.delta, [1.0, 0.0, 0.5, 0.0, -1.0, -0.5])
        for greek in (result.gamma, result.vega, result.theta):
            np.testing.assert_array_equal(greek, 0.0)


def test_value_tends_to_intrinsic_as_expiry_nears() -> None:
    years = np.array([1e-4, 1e-6, 1e-8, 1e-10])
    call = black76(101.0, 100.0, years, 0.8, True).value
    put = black76(99.0, 100.0, years, 0.8, False).value
    assert np.all(np.diff(call) <= 0)
    assert np.all(np.diff(put) <= 0)
    assert call[0] > 1.0
    assert put[0] > 1.0
    assert call[-1] == pytest.approx(1.0, abs=1e-12)
    assert put[-1] == pytest.approx(1.0, abs=1e-12)


def test_huge_vol_approaches_the_no_arbitrage_bounds() -> None:
    result = black76(100.0, 80.0, 1.0, np.array([20.0, 50.0]), np.array([True, False]))
    assert result.value[0] == pytest.approx(100.0, rel=1e-6)  # a call is worth at most F
    assert result.value[1] == pytest.approx(80.0, rel=1e-6)  # a put at most K


def test_tiny_vol_and_deep_otm_stay_finite_and_non_negative() -> None:
    f = np.array([100.0, 100.0, 100.0, 100.0])
    k = np.array([100.0, 1000.0, 10.0, 100.0])
    result = black76(f, k, 0.5, np.array([1e-8, 0.3, 0.3, 1e-12]), np.array([1, 1, 0, 0], bool))
    for greek in result:
        assert np.all(np.isfinite(greek))
    assert np.all(result.value >= 0.0)
    assert 0.0 < result.value[1] < 1e-10  # a 10x strike, 6 months at 30 %: tiny, not lost


def test_implied_vol_round_trips_on_random_inputs(inputs) -> None:
    f, k, t, s, call = (inputs[name] for name in ("forward", "strike", "years", "vol", "is_call"))
    price = black76(f, k, t, s, call).value
    solved = implied_vol(price, f, k, t, call)
    repriced = black76(f, k, t, solved, call).value
    _close(repriced, price, rtol=1e-10, atol=1e-12 * f)
    # Where the price says something about volatility (vega not lost in the time value's
    # rounding), the volatility itself comes back.
    intrinsic = np.maximum(np.where(call, f - k, k - f), 0.0)
    informative = (price - intrinsic) > 1e-6 * f
    assert informative.sum() > N // 5
    np.testing.assert_allclose(solved[informative], s[informative], rtol=1e-6)


def test_implied_vol_agrees_with_vollib(inputs) -> None:
    rows = np.arange(0, N, 7)
    f, k, t, s, call = (inputs[n][rows] for n in ("forward", "strike", "years", "vol", "is_call"))
    price = black76(f, k, t, s, call).value
    intrinsic = np.maximum(np.where(call, f - k, k - f), 0.0)
    rows_ok = (price - intrinsic) > 1e-5 * f
    ours = implied_vol(price, f, k, t, call)
    for i in np.flatnonzero(rows_ok):
        flag = "c" if call[i] else "p"
        theirs = oracle_iv(float(price[i]), float(f[i]), float(k[i]), 0.0, float(t[i]), flag)
        assert ours[i] == pytest.approx(theirs, rel=1e-6), (f[i], k[i], t[i], s[i], flag)


def test_implied_vol_of_prices_outside_the_bounds() -> None:
    solved = implied_vol(
        price=[10.0, 9.0, 100.0, 95.0, 3.0, math.nan],
        forward=[110.0, 110.0, 100.0, 100.0, 100.0, 100.0],
        strike=[100.0, 100.0, 90.0, 95.0, 100.0, 100.0],
        years=[0.5, 0.5, 0.5, 0.5, 0.0, 0.5],
        is_call=[True, True, True, False, True, True],
    )
    # at / below intrinsic -> 0; at the bound -> NaN; put at its strike -> NaN;
    # time value after expiry -> NaN; NaN in -> NaN.
    assert solved[0] == 0.0
    assert solved[1] == 0.0
    assert np.isnan(solved[2:]).all()


def test_years_to_expiry_counts_365_day_years_and_stops_at_zero() -> None:
    day = 86_400_000
    np.testing.assert_array_equal(years_to_expiry([365 * day, 0], [0, day]), [1.0, 0.0])
