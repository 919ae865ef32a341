"""The compiled liquidation-price solve agrees with the numpy reference on random
positions in every bracket, longs and shorts, with and without wrong-way exposure."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.models import ModelTable
from monitor.models._liquidation import liquidation_prices
from monitor.models._liquidation_kernel import liquidation_prices_fused
from monitor.schema import Instrument, RateCurve, SizeScaledMargin, Tier, TieredMargin

pytestmark = pytest.mark.unit


def models() -> ModelTable:
    brackets = [(50_000.0, 0.004, 0.008), (600_000.0, 0.005, 0.01), (3e6, 0.01, 0.02),
                (12e6, 0.025, 0.05), (1e15, 0.05, 0.1)]  # fmt: skip
    tiers, floor = [], 0.0
    for cap, mmr, imr in brackets:
        tiers.append(Tier(floor=floor, cap=cap, mmr=mmr, imr=imr))
        floor = cap
    scaled = SizeScaledMargin(
        im=RateCurve(base=0.02, slope=0.00005), mm=RateCurve(base=0.01, slope=0.00005)
    )
    return ModelTable.from_instruments(
        [
            Instrument(symbol=f"I{k}", kind="linear", quote="USDT", base=f"B{k}",
                       margin=scaled if k == 3 else TieredMargin(tiers=tuple(tiers[: 2 + k])))
            for k in range(4)
        ]
    )  # fmt: skip


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("wrong_way", [False, True])
def test_the_compiled_solve_equals_the_numpy_reference(seed: int, wrong_way: bool) -> None:
    layout = models().layout
    rng = np.random.default_rng(seed)
    n = 20_000
    instrument = rng.integers(0, 4, n).astype(np.intp)
    mark = rng.uniform(10.0, 60_000.0, n)
    notional = np.exp(rng.uniform(np.log(100.0), np.log(5e7), n))
    signed_size = notional / mark * rng.choice([-1.0, 1.0], n)
    equity = notional * rng.uniform(-0.05, 0.6, n)
    other = notional * rng.uniform(0.0, 0.1, n)
    exposure = signed_size * rng.uniform(1.0, 3.0, n) if wrong_way else None
    fused = liquidation_prices_fused(layout, instrument, signed_size, mark, equity, other, exposure)
    reference = liquidation_prices(layout, instrument, signed_size, mark, equity, other, exposure)
    np.testing.assert_array_equal(np.isnan(fused), np.isnan(reference))
    np.testing.assert_allclose(fused, reference, rtol=1e-12)
    assert 0.2 < np.isfinite(fused).mean() < 1.0
