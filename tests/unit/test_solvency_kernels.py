"""The stress's fused kernels agree with their numpy references on random inputs, run
through and paused at every look at a closed gate (resumed where they stopped)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor.engine import Engine, EngineConfig
from monitor.models import INVERSE, LINEAR, OPTION
from monitor.schema import PriceTick
from monitor.solvency._adl import account_quantiles
from monitor.solvency._adl_kernels import (
    PositionTerms,
    live_quantiles,
    live_quantiles_reference,
)
from monitor.solvency._copy_kernels import (
    revalue_copy,
    revalue_copy_reference,
    take_book,
    take_book_reference,
)
from monitor.solvency._gate import CycleGate
from monitor.solvency._kernels import (
    add_sizes,
    add_sizes_reference,
    stress_units,
    stress_units_reference,
)
from monitor.solvency._queue_kernels import scenario_heads, scenario_heads_reference
from monitor.solvency._report_kernels import (
    debt_by_base,
    debt_by_base_reference,
    largest,
    largest_reference,
    row_shares,
    row_shares_reference,
)
from monitor.solvency._state import LINEAR_UPNL, BookCopier, book_state

pytestmark = pytest.mark.unit

SEEDS = [1, 2, 3]


class ClosedGate(CycleGate):
    """A gate that never opens: every kernel pauses every 4,096 rows and is resumed."""

    def __init__(self) -> None:
        super().__init__()
        self.close()

    def wait(self) -> None:
        self.pauses += 1


@pytest.fixture(params=["open", "closed"])
def gate(request: pytest.FixtureRequest) -> CycleGate:
    return CycleGate() if request.param == "open" else ClosedGate()


def paused_as_often_as_it_should(gate: CycleGate, *passes: int) -> bool:
    """A closed gate: paused every 4,096 rows of each pass over the rows; open: never."""
    if isinstance(gate, ClosedGate):
        return gate.pauses >= sum(rows // 4096 for rows in passes)
    return gate.pauses == 0


class Book:
    """A random book: units of accounts, open positions in instruments, scenarios."""

    def __init__(self, seed: int, units: int = 6_000, rows: int = 20_000) -> None:
        rng = np.random.default_rng(seed)
        self.rng = rng
        self.n_instruments, self.n_scenarios, self.n_accounts = 7, 5, units // 2
        self.unit_account = np.sort(rng.integers(0, self.n_accounts, units)).astype(np.intp)
        self.row_unit = rng.integers(0, units, rows).astype(np.intp)
        self.row_instrument = rng.integers(0, self.n_instruments, rows).astype(np.intp)
        self.row_qty = rng.normal(0, 5, rows)
        self.row_qty[rng.random(rows) < 0.05] = 0.0
        self.values = rng.normal(0, 100, (self.n_instruments, self.n_scenarios))
        self.notional = rng.uniform(10, 1_000, self.n_instruments)
        self.unit_equity = rng.normal(300, 400, units)
        self.unit_scale = np.abs(self.unit_equity) + rng.uniform(0, 100, units)
        self.exposure = rng.normal(0, 50, (units, 2)) * (rng.random((units, 1)) < 0.5)
        self.asset_moves = rng.uniform(-0.5, 0.5, (2, self.n_scenarios))


@pytest.mark.parametrize("with_figures", [True, False])
@pytest.mark.parametrize("seed", SEEDS)
def test_take_book_equals_its_reference(seed: int, with_figures: bool) -> None:
    rng = np.random.default_rng(seed)
    units, rows = 500, 1_500
    args = (
        rng.integers(0, 300, units).astype(np.intp),
        rng.normal(0, 100, (units, 5)),
        np.where(rng.random(rows) < 0.3, -1, rng.integers(0, units, rows)).astype(np.intp),
        rng.integers(0, 9, rows).astype(np.intp),
        rng.normal(0, 1, rows),
        rng.uniform(1, 100, rows),
        rng.normal(0, 10, (rows, 3)),
        0,
        1,
        4,
        with_figures,
    )
    outs = [
        (np.zeros((3, units)), np.zeros(units, np.intp),
         np.zeros((4, rows)), np.zeros((2, rows), np.intp))
        for _ in range(2)
    ]  # fmt: skip
    n_kernel = take_book(*args, *outs[0])
    n_reference = take_book_reference(*args, *outs[1])  # type: ignore[arg-type]
    assert n_kernel == n_reference == int((args[2] >= 0).sum())
    for kernel, reference in zip(outs[0], outs[1], strict=True):
        np.testing.assert_array_equal(kernel, reference)


@pytest.mark.parametrize("seed", SEEDS)
def test_stress_units_equal_their_reference(seed: int, gate: CycleGate) -> None:
    b = Book(seed)
    args = (b.row_unit, b.row_instrument, b.row_qty, b.values, b.unit_equity,
            b.unit_scale, b.exposure, b.asset_moves, b.unit_account, b.n_accounts,
            1e-9)  # fmt: skip
    kernel = stress_units(*args, gate=gate)
    reference = stress_units_reference(*args)
    assert paused_as_often_as_it_should(gate, 20_000, 6_000)
    assert reference[1].any()  # some units bankrupt, not all
    assert not reference[1].all()
    for got, want in zip(kernel, reference, strict=True):
        assert got is not None
        if want.dtype == np.float64:
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)
        else:
            np.testing.assert_array_equal(got, want)
    # Without the equity, its array holds the debt: every other figure the same.
    equity, *rest = stress_units(*args, keep_equity=False)
    assert equity is None
    for got, want in zip(rest, kernel[1:], strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", SEEDS)
def test_largest_equals_its_reference_ties_in_index_order(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 20_000
    # Few distinct values, so many ties, also across the top's edge; zeros, negatives, NaN.
    values = rng.integers(-3, 40, n).astype(np.float64)
    values[rng.random(n) < 0.01] = np.nan
    among = rng.integers(0, 3, n).astype(np.int32)
    for top in (0, 1, 7, 100, 5_000, n + 1):
        for mask in (None, among):
            got = largest(values, top, mask)
            want = largest_reference(values, top, mask)
            np.testing.assert_array_equal(got, want)
    # By hand: the top 3 of equal and larger values, ties by index, none not positive.
    hand = np.array([2.0, 5.0, 0.0, 5.0, -1.0, 2.0, 7.0])
    assert largest(hand, 3).tolist() == [6, 1, 3]
    assert largest(hand, 5).tolist() == [6, 1, 3, 0, 5]
    assert largest(hand, 9, np.array([1, 0, 1, 1, 1, 1, 0], dtype=np.int32)).tolist() == [3, 0, 5]


@pytest.mark.parametrize("seed", SEEDS)
def test_add_sizes_equals_its_reference(seed: int, gate: CycleGate) -> None:
    b = Book(seed)
    scale = [b.unit_scale.copy(), b.unit_scale.copy()]
    add_sizes(b.row_unit, b.row_instrument, b.row_qty, b.notional, scale[0], gate=gate)
    add_sizes_reference(b.row_unit, b.row_instrument, b.row_qty, b.notional, scale[1])
    assert paused_as_often_as_it_should(gate, 20_000)
    np.testing.assert_allclose(scale[0], scale[1], rtol=1e-13)
    # By hand: unit 0 holds -2 of instrument 1 and 3 of instrument 0.
    one = np.array([0.5, 0.0])
    add_sizes_reference(
        np.array([0, 1, 0]), np.array([1, 0, 0]), np.array([-2.0, 7.0, 3.0]),
        np.array([10.0, 100.0]), one,
    )  # fmt: skip
    assert one.tolist() == [0.5 + 200.0 + 30.0, 70.0]


@pytest.mark.parametrize("seed", SEEDS)
def test_row_shares_and_debt_by_base_equal_their_references(seed: int, gate: CycleGate) -> None:
    b = Book(seed)
    units = b.unit_equity.shape[0]
    maintenance = b.rng.uniform(0, 50, b.row_unit.shape[0])
    maintenance[b.row_unit % 7 == 0] = 0.0  # units whose positions need no margin
    maintenance[::11] = -1.0  # a negative figure counts as none
    share_k = row_shares(b.row_unit, maintenance, units, gate=gate)
    share_r = row_shares_reference(b.row_unit, maintenance, units)
    np.testing.assert_allclose(share_k, share_r, rtol=1e-14)
    in_place = maintenance.copy()  # the shares written over the margins they come from
    assert row_shares(b.row_unit, in_place, units, gate=gate, out=in_place) is in_place
    np.testing.assert_allclose(in_place, share_r, rtol=1e-14)
    held = np.bincount(b.row_unit, minlength=units) > 0
    np.testing.assert_allclose(np.bincount(b.row_unit, share_r, units)[held], 1.0, rtol=1e-12)
    debt = np.maximum(-b.rng.normal(0, 100, (units, b.n_scenarios)), 0.0)
    instrument_base = np.array([0, 2, 1, 0, 2, 1, 1], dtype=np.intp)
    args = (b.row_unit, b.row_instrument, instrument_base, share_r, debt, 3)
    by_base_k = debt_by_base(*args, gate=gate)
    assert paused_as_often_as_it_should(gate, 20_000, 20_000)
    by_base_r = debt_by_base_reference(*args)
    np.testing.assert_allclose(by_base_k, by_base_r, rtol=1e-12)
    # Every unit with a position hands all its debt to the underlyings.
    np.testing.assert_allclose(by_base_r.sum(axis=0), debt[held].sum(axis=0), rtol=1e-12)


def _adl_rows(b: Book) -> tuple[np.ndarray, PositionTerms]:
    """Unrealised P&L and what the positions' values come from: entries, and per
    instrument inverse or not, contract size, settle value and mark (an inverse
    position without an entry: a value that is not finite, taken as numpy.nan_to_num)."""
    rows = b.row_unit.shape[0]
    entry = b.rng.uniform(1, 100, rows)
    is_inverse = np.array([False, True, False, False, False, True, False])
    entry[np.flatnonzero(is_inverse[b.row_instrument])[:5]] = 0.0
    terms = PositionTerms(
        entry,
        is_inverse,
        b.rng.uniform(0.1, 10, b.n_instruments),
        b.rng.uniform(0.5, 2, b.n_instruments),
        b.rng.uniform(1, 100, b.n_instruments),
    )
    return b.rng.normal(0, 50, rows), terms


@pytest.mark.parametrize("seed", SEEDS)
def test_live_quantiles_equal_their_reference(seed: int, gate: CycleGate) -> None:
    b = Book(seed)
    upnl, terms = _adl_rows(b)
    upnl[::3] = 0.0  # ties at a score of 0: ranked in row order by both
    for kept in (upnl, LINEAR_UPNL):  # kept, or worked out from the terms where read
        args = (b.row_unit, b.row_instrument, b.row_qty, kept, terms, b.unit_equity,
                b.unit_account, b.n_accounts)  # fmt: skip
        kernel, reference = live_quantiles(*args, gate=gate), live_quantiles_reference(*args)
        assert paused_as_often_as_it_should(gate, 20_000)
        assert np.isnan(reference).any()
        assert np.isfinite(reference).any()
        np.testing.assert_array_equal(np.isnan(kernel), np.isnan(reference))
        np.testing.assert_allclose(kernel, reference, rtol=1e-15)


@pytest.mark.parametrize("seed", SEEDS)
def test_scenario_heads_equal_their_reference(seed: int, gate: CycleGate) -> None:
    b = Book(seed)
    upnl, terms = _adl_rows(b)
    kind = np.array([LINEAR, INVERSE, OPTION, LINEAR, LINEAR, INVERSE, OPTION], dtype=np.int8)
    units = b.unit_equity.shape[0]
    equity = b.rng.normal(100, 300, units)
    equity[equity > 0.0] = 250.0  # one equity for every solvent unit: ...
    bankrupt = equity < -10.0
    debt = np.maximum(-equity, 0.0)
    share = b.rng.uniform(0, 1, b.row_unit.shape[0])
    qty = b.row_qty.copy()
    alike = np.flatnonzero(b.row_instrument == 0)  # ... and instrument 0's rows alike per
    qty[alike] = np.where(np.arange(alike.size) % 2, -1.0, 1.0)  # side: equal scores,
    terms.row_entry[alike] = 10.0  # kept in row order by both
    upnl[alike] = 0.0
    moves = b.rng.uniform(-0.5, 0.5, b.n_instruments)
    passes = 0
    for kept in (LINEAR_UPNL, upnl):  # worked out from the terms where read, or kept
        for length in (1, 5, 40):
            args = (b.row_unit, b.row_instrument, qty, kept, terms, share, kind,
                    b.values[:, 0].copy(), moves, equity, bankrupt, debt, 0.4, length)  # fmt: skip
            got = scenario_heads(*args, gate=gate)
            want = scenario_heads_reference(*args)  # type: ignore[arg-type]
            passes += 2
            np.testing.assert_allclose(got[0], want[0], rtol=1e-12)  # shortfall
            np.testing.assert_array_equal(got[1], want[1])  # holders
            np.testing.assert_array_equal(got[2], want[2])  # heads
            np.testing.assert_allclose(got[3], want[3], rtol=1e-13)  # their scores
            assert (want[1] > 0).sum() > 3  # queues with candidates
            scores = want[3][want[2] >= 0]
            if length == 40:  # ties among the heads, the queues' order decided by row
                assert np.unique(scores).shape[0] < scores.shape[0]
    assert paused_as_often_as_it_should(gate, *([20_000] * passes))


def _banded_pair(seed: int) -> tuple[Engine, Engine]:
    """The same book twice, with and without price bands, after a few calm ticks: the
    banded engine's cached figures are those of older marks for most units."""
    from tests.unit.test_band_kernels import banded_book

    engines = [
        banded_book(seed, accounts=3_000, config=EngineConfig(price_bands=bands))
        for bands in (True, False)
    ]
    rng = np.random.default_rng(seed)
    symbols = engines[0].book.symbols
    marks = engines[0].book.mark.copy()
    for ts in range(1, 6):
        marks *= rng.uniform(0.9995, 1.0005, marks.size)
        ticks = [
            PriceTick(symbol=s, mark_price=float(m), ts=ts)
            for s, m in zip(symbols, marks, strict=True)
        ]
        for engine in engines:
            engine.apply([], ticks, ts)
    return engines[0], engines[1]


@pytest.mark.parametrize("seed", SEEDS)
def test_revalue_copy_equals_its_reference(seed: int, gate: CycleGate) -> None:
    banded, _ = _banded_pair(seed)
    copy = BookCopier().take(banded)
    assert copy.layout is not None
    layout = copy.layout
    n_units, n_rows = copy.unit_equity.shape[0], copy.row_qty.shape[0]
    outs = [(np.empty(n_rows), np.empty(n_units), np.empty(n_units)) for _ in range(2)]
    rows = (copy.row_unit, copy.row_instrument, copy.row_qty, copy.row_entry, copy.mark)
    revalue_copy(*rows, layout, copy.settle_value, copy.unit_collateral, *outs[0], gate=gate)
    revalue_copy_reference(
        *rows, layout.contract_size, copy.settle_value, layout.n_tiers, layout.floors,
        layout.mmr, layout.imr, layout.cum, layout.mm_slope, layout.im_slope,
        copy.unit_collateral, *outs[1],
    )  # fmt: skip
    for kernel, reference in zip(outs[0], outs[1], strict=True):
        np.testing.assert_array_equal(kernel, reference)  # same arithmetic, same order
    assert paused_as_often_as_it_should(gate, n_rows)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_banded_books_stress_view_is_the_current_one(seed: int) -> None:
    """With price bands most units' cached figures are of older marks; the stress's view
    of the book is revalued at the copy's marks: what it is without bands."""
    banded, every = _banded_pair(seed)
    stale = np.abs(banded.book.units.upnl - every.book.units.upnl)[: banded.book.units.size]
    assert (stale > 0).mean() > 0.5  # the test means something
    with_bands, without = book_state(banded), book_state(every)
    for name in ("unit_equity", "unit_scale", "row_share"):
        np.testing.assert_allclose(
            getattr(with_bands, name), getattr(without, name), rtol=1e-12, atol=1e-7
        )
    # The banded view keeps no uPnL per position: worked out where read, it is the current.
    assert with_bands.row_upnl.size == 0
    assert without.row_upnl.size > 0
    worked_out = with_bands.position_terms().upnl(
        with_bands.row_upnl, with_bands.row_instrument, with_bands.row_qty
    )
    np.testing.assert_allclose(worked_out, without.row_upnl, rtol=1e-12, atol=1e-7)
    quantiles = account_quantiles(with_bands), account_quantiles(without)
    np.testing.assert_array_equal(np.isnan(quantiles[0]), np.isnan(quantiles[1]))
    assert np.isfinite(quantiles[0]).sum() > 100
    np.testing.assert_allclose(quantiles[0], quantiles[1], rtol=1e-12)


def _dispatchers() -> dict[str, Any]:
    """Every compiled kernel of the stress, by module and name."""
    from numba.core.registry import CPUDispatcher

    from monitor.solvency import (
        _adl_kernels,
        _copy_kernels,
        _kernels,
        _queue_kernels,
        _report_kernels,
    )

    return {
        f"{module.__name__}.{name}": value
        for module in (_kernels, _report_kernels, _copy_kernels, _adl_kernels, _queue_kernels)
        for name, value in vars(module).items()
        if isinstance(value, CPUDispatcher)
    }


def grown_after_warm_up() -> dict[str, int]:
    """Signatures the stress's kernels gain in a stress as the service runs it (the kept
    copy of a banded book, its view, the report with its ADL queues, the live
    quantiles), after ``warm_up``."""
    from monitor.solvency import Stresser, state_of, warm_up

    engine = _banded_pair(1)[0]
    warm_up()
    known = {name: len(d.signatures) for name, d in _dispatchers().items()}
    state = state_of(BookCopier().take(engine))
    assert state.row_unit.dtype == np.int32  # the copy's ids
    stresser = Stresser(sorted({i.base for i in engine.book.instruments}))
    report = stresser.report(state, 0.0, 1)
    stresser.quantiles(state)
    assert report.adl_candidates  # the queues ran: some debt, no fund
    return {
        name: len(d.signatures) - known[name]
        for name, d in _dispatchers().items()
        if len(d.signatures) != known[name]
    }


def test_warm_up_compiles_every_kernel_for_the_types_the_service_calls_with() -> None:
    """After ``warm_up`` a stress compiles nothing: a kernel compiled for other array
    types would compile on first use, inside the cycle that copies the book. In a fresh
    process, where no other test has compiled a kernel that would hide a gap."""
    root = Path(__file__).resolve().parents[2]
    argv = [sys.executable, "-m", "tests.unit.test_solvency_kernels"]
    done = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == {}


if __name__ == "__main__":
    print(json.dumps(grown_after_warm_up()))
