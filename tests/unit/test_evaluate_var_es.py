"""Model ``var_es`` in ``liqmon evaluate``, against a plain-loop reference written here
(its own Black-76, its own EWMA, its own tail statistics; nothing from monitor.risk)."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import numpy as np
import pytest

from monitor.errors import InputError
from monitor.evaluate import decode_request, evaluate

pytestmark = pytest.mark.unit

DAYS = 28
STRIKE = 100_000.0
VOL = 0.5


def history(n: int = 80, seed: int = 7) -> list[float]:
    """Fat-ish tailed daily closes of BTC-USD ending at 100,000."""
    rnd = random.Random(seed)
    moves = [rnd.gauss(0, 0.03) * (3 if rnd.random() < 0.05 else 1) for _ in range(n - 1)]
    closes = [100_000.0]
    for r in reversed(moves):
        closes.append(closes[-1] / math.exp(r))
    return closes[::-1]


def request(**var_es: Any) -> dict[str, Any]:
    return {
        "now": "2026-12-02T08:00:00Z",
        "valuation_asset": "USDC",
        "instruments": [
            {
                "symbol": "BTC-USD",
                "kind": "linear",
                "quote": "USDC",
                "base": "BTC",
                "margin": {
                    "model": "tiered",
                    "tiers": [{"floor": 0, "cap": 1e12, "mmr": 0.05, "imr": 0.1}],
                },
            },
            {
                "symbol": "BTC-C",
                "kind": "option",
                "quote": "USDC",
                "base": "BTC",
                "underlying": "BTC-USD",
                "strike": STRIKE,
                "expiry": "2026-12-30T08:00:00Z",
                "option_type": "call",
                "margin": {"model": "option_standard"},
            },
        ],
        "prices": {"BTC-USD": 100_000.0},
        "vols": {"BTC-C": VOL},
        "accounts": [
            {
                "account": "covered",
                "collateral": {"USDC": 50_000},
                "positions": [
                    {"symbol": "BTC-USD", "qty": 1, "entry_price": 100_000},
                    {"symbol": "BTC-C", "qty": -2, "entry_price": 5000},
                ],
            },
            {
                "account": "long",
                "collateral": {"USDC": 50_000},
                "positions": [{"symbol": "BTC-USD", "qty": 0.5, "entry_price": 100_000}],
            },
        ],
        "var_es": {"history": {"BTC-USD": history()}, "ewma_warmup": 10, **var_es},
    }


def run(req: dict[str, Any]) -> dict[str, Any]:
    risks = evaluate(decode_request(json.dumps(req).encode()))
    return {r.account: r.var_es for r in risks}


# --------------------------------------------------------------------------- the reference


def call_value(forward: float, years: float, vol: float) -> float:
    """Black-76 call with zero rate (Black 1976), by the textbook formula."""
    sd = vol * math.sqrt(years)
    d1 = (math.log(forward / STRIKE) + 0.5 * sd * sd) / sd
    d2 = d1 - sd

    def cdf(x: float) -> float:
        return 0.5 * (1 + math.erf(x / math.sqrt(2)))

    return forward * cdf(d1) - STRIKE * cdf(d2)


def tail(pnl: list[float], confidence: float) -> tuple[float, float]:
    """(VaR, ES): the k-th worst loss and the mean of the k worst, k = floor(N(1-c))."""
    k = max(1, math.floor(len(pnl) * (1 - confidence) + 1e-9))
    losses = sorted((-x for x in pnl), reverse=True)[:k]
    return losses[-1], sum(losses) / k


def reference_pnl(
    closes: list[float], positions: dict[str, float], window: int, mpor: int, filtered: bool
) -> list[float]:
    logs = [math.log(c) for c in closes]
    n = len(logs)
    warmup, lam = 10, 0.94
    rets = [logs[i] - logs[i - 1] for i in range(1, n)]
    # vol[i]: EWMA standing at close i (return i-1 is the latest it saw).
    vol: list[float] = [math.nan] * n
    var = math.nan
    for i, r in enumerate(rets):
        if i + 1 == warmup:
            mean = sum(rets[:warmup]) / warmup
            var = sum((x - mean) ** 2 for x in rets[:warmup]) / (warmup - 1)
        elif i + 1 > warmup:
            var = lam * var + (1 - lam) * r * r
        vol[i + 1] = math.sqrt(var) if not math.isnan(var) else math.nan
    years = DAYS / 365.0
    base = call_value(100_000.0, years, VOL)
    pnl = []
    for t in range(n - window, n):
        r = logs[t] - logs[t - mpor]
        if filtered:
            r *= vol[n - 1] / vol[t - mpor]
        moved = 100_000.0 * math.exp(r)
        future = positions.get("BTC-USD", 0.0) * (moved - 100_000.0)
        option = positions.get("BTC-C", 0.0) * (call_value(moved, years, VOL) - base)
        pnl.append(future + option)
    return pnl


@pytest.mark.parametrize("mpor", [1, 3])
@pytest.mark.parametrize(("scenario_set", "filtered"), [("historical", False), ("filtered", True)])
def test_var_and_es_match_the_plain_loop_reference(
    mpor: int, scenario_set: str, filtered: bool
) -> None:
    got = run(request(mpor=mpor))
    closes = history()
    window = len(closes) - 10 - mpor
    for account, positions in (
        ("covered", {"BTC-USD": 1, "BTC-C": -2}),
        ("long", {"BTC-USD": 0.5}),
    ):
        figures = got[account]
        assert figures is not None
        found = next(s for s in figures.sets if s.scenario_set == scenario_set)
        assert found.scenarios == window
        assert found.seed is None
        pnl = reference_pnl(closes, positions, window, mpor, filtered)
        for confidence, var, es in (
            (0.99, found.var_99, found.es_99),
            (0.975, found.var_975, found.es_975),
        ):
            ref_var, ref_es = tail(pnl, confidence)
            assert var == pytest.approx(ref_var, rel=1e-9, abs=1e-6)
            assert es == pytest.approx(ref_es, rel=1e-9, abs=1e-6)


def test_initial_margin_is_es_of_the_model_set_and_maintenance_a_factor_of_it() -> None:
    figures = run(request(model_set="historical", mm_factor=0.6))["covered"]
    assert figures is not None
    historical = next(s for s in figures.sets if s.scenario_set == "historical")
    assert figures.initial_margin == pytest.approx(historical.es_975)
    assert figures.maintenance_margin == pytest.approx(0.6 * historical.es_975)


def test_monte_carlo_reports_its_paths_and_seed_and_repeats_with_the_seed() -> None:
    first = run(request(paths=2000, seed=11))["long"]
    again = run(request(paths=2000, seed=11))["long"]
    other = run(request(paths=2000, seed=12))["long"]
    assert first is not None
    assert again is not None
    assert other is not None
    mc = next(s for s in first.sets if s.scenario_set == "monte_carlo")
    assert (mc.scenarios, mc.seed) == (2000, 11)
    assert mc == next(s for s in again.sets if s.scenario_set == "monte_carlo")
    assert mc != next(s for s in other.sets if s.scenario_set == "monte_carlo")
    assert mc.es_99 >= mc.var_99 > 0


def test_a_position_without_history_is_a_one_line_input_error() -> None:
    req = request()
    req["var_es"]["history"] = {}
    with pytest.raises(InputError, match=r"\$\.var_es\.history: no closes for BTC-USD"):
        run(req)


def test_too_short_a_history_says_how_many_closes_it_needs() -> None:
    with pytest.raises(InputError, match="need 200 closes"):
        run(request(window=189))


def reference_monte_carlo(
    closes: list[float],
    positions: dict[str, float],
    *,
    paths: int,
    seed: int,
    dof: float,
    mpor: int,
    vol_of_vol: float,
    rho: float,
) -> list[float]:
    """Monte Carlo P&L per path as docs/evaluate.md states it, with numpy's generator
    drawn in the documented order (normals, chi-square, then the vol normals)."""
    logs = [math.log(c) for c in closes]
    rets = [logs[i] - logs[i - 1] for i in range(1, len(logs))]
    warmup, lam = 10, 0.94
    mean = sum(rets[:warmup]) / warmup
    var = sum((x - mean) ** 2 for x in rets[:warmup]) / (warmup - 1)
    for r in rets[warmup:]:
        var = lam * var + (1 - lam) * r * r
    sigma = math.sqrt(var)
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((paths, 1))[:, 0]
    w = rng.chisquare(dof, size=paths)
    e = rng.standard_normal((paths, 1))[:, 0]
    years = DAYS / 365.0
    base = call_value(100_000.0, years, VOL)
    pnl = []
    for k in range(paths):
        r = math.sqrt(mpor) * sigma * z[k] * math.sqrt((dof - 2) / w[k])
        u = r / (sigma * math.sqrt(mpor))
        vol = VOL * math.exp(
            vol_of_vol * math.sqrt(mpor) * (rho * u + math.sqrt(1 - rho**2) * e[k])
        )
        moved = 100_000.0 * math.exp(r)
        future = positions.get("BTC-USD", 0.0) * (moved - 100_000.0)
        option = positions.get("BTC-C", 0.0) * (call_value(moved, years, vol) - base)
        pnl.append(future + option)
    return pnl


@pytest.mark.parametrize(("vol_of_vol", "rho"), [(0.0, -0.5), (0.3, -0.5), (0.3, 0.4)])
def test_monte_carlo_revalues_options_at_each_paths_price_and_vol_move(
    vol_of_vol: float, rho: float
) -> None:
    got = run(request(paths=3000, seed=5, mpor=2, vol_of_vol=vol_of_vol, vol_correlation=rho))[
        "covered"
    ]
    assert got is not None
    mc = next(s for s in got.sets if s.scenario_set == "monte_carlo")
    pnl = reference_monte_carlo(
        history(),
        {"BTC-USD": 1, "BTC-C": -2},
        paths=3000,
        seed=5,
        dof=5.0,
        mpor=2,
        vol_of_vol=vol_of_vol,
        rho=rho,
    )
    for confidence, var, es in ((0.99, mc.var_99, mc.es_99), (0.975, mc.var_975, mc.es_975)):
        ref_var, ref_es = tail(pnl, confidence)
        assert var == pytest.approx(ref_var, rel=1e-9)
        assert es == pytest.approx(ref_es, rel=1e-9)


def test_an_option_books_monte_carlo_risk_reacts_to_the_vol_move_a_future_does_not() -> None:
    held = run(request(paths=4000, vol_of_vol=0.0))
    moved = run(request(paths=4000, vol_of_vol=0.4, vol_correlation=-0.7))

    def mc(figures: Any) -> Any:
        return next(s for s in figures.sets if s.scenario_set == "monte_carlo")

    # Long the future, short two calls: the loss tail is a fall, where the calls' fall in
    # value pays the short. A fall with a vol spike (negative spot-vol correlation) keeps
    # the calls dearer, so the covered call loses more than at a held volatility.
    assert mc(moved["covered"]).es_975 > 1.02 * mc(held["covered"]).es_975
    # The future alone has no vega: the same paths give the same figures.
    assert mc(moved["long"]) == mc(held["long"])


def test_vol_move_settings_out_of_range_are_one_line_errors() -> None:
    with pytest.raises(InputError, match=r"\$\.var_es\.vol_correlation: must be in \[-1, 1\]"):
        run(request(vol_correlation=-1.5))
    with pytest.raises(InputError, match=r"\$\.var_es\.vol_of_vol: must be in \[0, 10\)"):
        run(request(vol_of_vol=-0.1))
