"""The fused revaluation kernel agrees with its numpy reference and with the engine's
own numpy path, on random books of linear contracts (tiered and size-scaled)."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.book import load_cross_accounts
from monitor.engine import Engine
from monitor.engine._kernels import HAVE_NUMBA, revalue_linear, revalue_linear_reference
from monitor.engine._revalue import _CHUNK, figures, recompute_units
from monitor.schema import Instrument, PriceTick, RateCurve, SizeScaledMargin, Tier, TieredMargin

pytestmark = pytest.mark.unit


def instruments() -> list[Instrument]:
    tiered = TieredMargin(
        tiers=(
            Tier(floor=0, cap=50_000, mmr=0.004, imr=0.008),
            Tier(floor=50_000, cap=600_000, mmr=0.005, imr=0.01),
            Tier(floor=600_000, cap=1e15, mmr=0.01, imr=0.02),
        )
    )
    scaled = SizeScaledMargin(
        im=RateCurve(base=0.02, slope=0.00005), mm=RateCurve(base=0.01, slope=0.00005)
    )
    return [
        Instrument(symbol=f"I{k}", kind="linear", quote="USDT", base=f"B{k}",
                   margin=scaled if k % 3 == 0 else tiered, contract_size=1.0 + k % 2)
        for k in range(7)
    ]  # fmt: skip


def random_book(seed: int, accounts: int = 3_000) -> Engine:
    rng = np.random.default_rng(seed)
    engine = Engine(instruments())
    marks = rng.uniform(10, 50_000, 7)
    engine.apply(
        [], [PriceTick(symbol=f"I{k}", mark_price=float(m), ts=0) for k, m in enumerate(marks)], 0
    )
    per = 3
    account = np.repeat(np.arange(accounts), per)
    instrument = (np.arange(accounts * per) % 7).astype(np.intp)
    entry = marks[instrument] * rng.uniform(0.8, 1.2, account.size)
    qty = rng.lognormal(0, 2, account.size) * rng.choice([-1.0, 1.0], account.size)
    leverage = np.where(
        rng.random(account.size) < 0.5, np.nan, rng.choice([2.0, 20.0, 125.0], account.size)
    )
    balances = rng.lognormal(8, 1, (accounts, 1))
    names = [f"a{i}" for i in range(accounts)]
    load_cross_accounts(engine.book, names, balances, account, instrument, qty, entry, leverage)
    return engine


def kernel_inputs(engine: Engine) -> tuple[object, ...]:
    book = engine.book
    pos, layout, n = book.positions, book.models.layout, book.positions.size
    return (
        pos.instrument[:n], pos.qty[:n], pos.entry[:n], pos.leverage[:n], pos.unit[:n],
        book.mark, layout.contract_size, book.assets.value.take(book.settle_asset),
        layout.n_tiers, layout.floors, layout.mmr, layout.imr, layout.cum,
        layout.mm_slope, layout.im_slope,
    )  # fmt: skip


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_kernel_equals_its_numpy_reference(seed: int) -> None:
    engine = random_book(seed)
    n, units = engine.book.positions.size, engine.book.units.size
    rows_k, units_k = np.empty((4, n)), np.zeros((units, 4))
    rows_r, units_r = np.empty((4, n)), np.zeros((units, 4))
    revalue_linear(*kernel_inputs(engine), rows_k, units_k)
    revalue_linear_reference(*kernel_inputs(engine), rows_r, units_r)  # type: ignore[arg-type]
    np.testing.assert_allclose(rows_k, rows_r, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(units_k, units_r, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("seed", [4, 5])
def test_the_fused_recompute_equals_the_engines_numpy_path(seed: int) -> None:
    engine = random_book(seed)
    book = engine.book
    pos = book.positions
    n = pos.size
    expected = np.empty((3, n))
    for start in range(0, n, _CHUNK):
        part = slice(start, min(n, start + _CHUNK))
        expected[:, part] = figures(
            book, pos.instrument[part], pos.qty[part], pos.entry[part], pos.leverage[part]
        )
    fresh = recompute_units(book, count_positions=True, write_rows=True)
    np.testing.assert_allclose(fresh.row_columns[:3], expected, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(pos.figures[:n].T, expected, rtol=1e-12, atol=1e-9)
    engine.full_recompute()
    assert engine.verify() == []


def test_numba_is_there_to_fuse() -> None:
    assert HAVE_NUMBA, "numba is a dependency: `pip install -e '.[dev]'`"
