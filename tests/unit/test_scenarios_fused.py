"""The fused portfolio kernels agree with their numpy references on random inputs:
``holder_figures`` (one pass over a group's holders) with ``group_margin``, and
``build_index`` (counting sort of a group's portfolio rows) with a lexsort."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.book import PORTFOLIO, load_cross_accounts
from monitor.engine import Engine, EngineConfig
from monitor.engine._portfolio_index import build_index, build_index_reference
from monitor.scenarios import holder_figures, holder_figures_reference, price_group
from monitor.schema import (
    Instrument,
    OptionStandardMargin,
    PortfolioMarginParams,
    PriceTick,
    Tier,
    TieredMargin,
)
from tests.unit import pm_reference as ref
from tests.unit.test_scenarios_risk_matrix import close, random_books, random_group, terms_of

pytestmark = pytest.mark.unit

MODELS = ("pm_risk_matrix", "pm_greeks", "pm_hybrid")


def random_holders(
    rng: np.random.Generator, instruments: int, holders: int, rows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr, rows, col): each holder up to 8 distinct instruments, ascending, on
    scattered distinct rows of a table of ``rows``."""
    counts = rng.integers(0, min(8, instruments) + 1, size=holders)
    indptr = np.zeros(holders + 1, dtype=np.intp)
    np.cumsum(counts, out=indptr[1:])
    col = np.concatenate(
        [np.sort(rng.choice(instruments, size=int(c), replace=False)) for c in counts]
    ).astype(np.intp)
    position_rows = rng.choice(rows, size=col.size, replace=False).astype(np.intp)
    return indptr, position_rows, col


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("seed", range(4))
def test_fused_holder_figures_equal_the_numpy_reference(model: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    instruments = random_group(rng, 40)
    params = PortfolioMarginParams(model=model)  # type: ignore[arg-type]
    priced = price_group(terms_of(instruments), params)
    indptr, rows, col = random_holders(rng, len(instruments), 300, 5_000)
    qty = rng.normal(0.0, 5.0, 5_000) * (rng.random(5_000) < 0.9)  # some flat rows
    standard = rng.uniform(0.0, 50_000.0, 5_000)
    got = holder_figures(priced, indptr, rows, col, qty, standard)
    want = holder_figures_reference(priced, indptr, rows, col, qty, standard)
    for name, value in want._asdict().items():
        np.testing.assert_allclose(getattr(got, name), value, rtol=1e-12, atol=1e-9, err_msg=name)
    assert (got.worst == want.worst).all()


def test_fused_holder_figures_propagate_a_nan_scenario_value_as_nan() -> None:
    rng = np.random.default_rng(7)
    priced = price_group(terms_of(random_group(rng, 6)), PortfolioMarginParams())
    priced.values[3, 5] = np.nan  # an instrument that could not be priced in one scenario
    indptr = np.array([0, 2, 3], dtype=np.intp)
    rows, col = np.arange(3, dtype=np.intp), np.array([0, 3, 1], dtype=np.intp)
    qty = np.array([1.0, -2.0, 1.0])
    got = holder_figures(priced, indptr, rows, col, qty, np.empty(0))
    want = holder_figures_reference(priced, indptr, rows, col, qty, np.empty(0))
    assert np.isnan(got.maintenance[0])
    assert np.isnan(want.maintenance[0])
    assert got.maintenance[1] == pytest.approx(want.maintenance[1], rel=1e-12)


def small_book(seed: int) -> Engine:
    """400 accounts with up to 6 positions each on a future and 20 options, modes mixed."""
    rng = np.random.default_rng(seed)
    specs = [
        Instrument(
            symbol="BTC-USD",
            kind="linear",
            quote="USDC",
            base="BTC",
            margin=TieredMargin(tiers=(Tier(floor=0, cap=1e15, mmr=0.01, imr=0.02),)),
        )
    ]
    specs += [
        Instrument(
            symbol=f"BTC-{k}-{kind}",
            kind="option",
            quote="USDC",
            base="BTC",
            underlying="BTC-USD",
            strike=80_000.0 + 4_000.0 * (k % 10),
            expiry=1_800_000_000_000 + 86_400_000 * (k // 10),
            option_type=kind,  # type: ignore[arg-type]
            margin=OptionStandardMargin(),
        )
        for k in range(10)
        for kind in ("call", "put")
    ]
    engine = Engine(specs, EngineConfig(valuation_asset="USDC"))
    engine.apply([], [PriceTick(symbol="BTC-USD", mark_price=100_000.0, ts=0)], 0)
    accounts = 400
    account = np.repeat(np.arange(accounts), 6)
    instrument = rng.integers(0, len(specs), size=account.size)
    pairs = np.unique(account * len(specs) + instrument)
    account, instrument = pairs // len(specs), (pairs % len(specs)).astype(np.intp)
    qty = rng.normal(0.0, 3.0, account.size)
    names = [f"a{k}" for k in range(accounts)]
    balances = np.full((accounts, len(engine.book.assets)), 1e6)
    load_cross_accounts(
        engine.book, names, balances, account, instrument, qty, np.full(qty.size, 100.0)
    )
    book = engine.book
    book.accounts.mode[:accounts] = np.where(rng.random(accounts) < 0.7, PORTFOLIO, 0)
    n = book.positions.size
    book.positions.qty[:n][rng.random(n) < 0.1] = 0.0  # flat rows
    book.positions.unit[:n][rng.random(n) < 0.05] = -1  # rows outside the cross unit
    return engine


@pytest.mark.parametrize("seed", range(3))
def test_counting_sort_index_equals_the_lexsort_reference(seed: int) -> None:
    engine = small_book(seed)
    book, layout = engine.book, engine.portfolio.layout
    rng = np.random.default_rng(seed)
    rows = rng.permutation(book.positions.size).astype(np.intp)
    got = build_index(book, rows, layout.col)
    want = build_index_reference(book, rows, layout.col)
    assert got.size > 100
    for name, value in want._asdict().items():
        np.testing.assert_array_equal(getattr(got, name), value, err_msg=name)


@pytest.mark.parametrize("seed", range(6))
def test_fused_holder_figures_agree_with_the_plain_loop_reference(seed: int) -> None:
    """The kernel the engine runs on every tick, against pm_reference (no monitor code)."""
    rng = np.random.default_rng(100 + seed)
    instruments = random_group(rng, 30)
    books = random_books(rng, len(instruments), 25)
    priced = price_group(terms_of(instruments), PortfolioMarginParams())
    cols = [sorted(book) for book in books]
    indptr = np.cumsum([0, *(len(c) for c in cols)]).astype(np.intp)
    col = np.array([c for held in cols for c in held], dtype=np.intp)
    qty = np.array([books[r][c] for r, held in enumerate(cols) for c in held])
    got = holder_figures(priced, indptr, np.arange(col.size, dtype=np.intp), col, qty, qty[:0])
    for r, book in enumerate(books):
        want = ref.margin(instruments, book, ref.RefParams())
        pnl = want["pnl"]
        assert isinstance(pnl, list)
        scale = max(abs(x) for x in pnl) + 1.0
        for name, column in (
            ("loss", got.loss),
            ("futures", got.futures_contingency),
            ("options", got.option_contingency),
            ("mm", got.maintenance),
            ("im", got.initial),
        ):
            value = want[name]
            assert isinstance(value, float)
            assert close(float(column[r]), value, scale), (name, r, column[r], value)
