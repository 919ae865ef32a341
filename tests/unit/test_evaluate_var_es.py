"""Model ``var_es`` in ``liqmon evaluate``, against a plain-loop reference written here
(its own Black-76, its own EWMA, its own tail statistics; nothing from monitor.risk)."""

from __future__ import annotations

import json
import math
import random
from typing import Any

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
