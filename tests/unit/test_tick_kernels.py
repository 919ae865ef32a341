"""The tick's fused kernels agree with their numpy references and with the engine's
numpy path (``Book.values``), on a random book of futures and options."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.engine._revalue import figures
from monitor.engine._tick_kernels import (
    moved_rows,
    moved_rows_reference,
    revalue_option_rows,
    revalue_option_rows_reference,
    touched_units,
    touched_units_reference,
    unit_sums_into,
    unit_sums_into_reference,
)
from monitor.models import OPTION
from tests.unit.test_scenarios_fused import small_book

pytestmark = pytest.mark.unit


def option_inputs(seed: int) -> tuple[object, ...]:
    book = small_book(seed).book
    n = book.positions.size
    return (
        book.positions.instrument[:n],
        book.positions.qty[:n],
        book.contracts.kind,
        book.models.contract_size,
        book.mark,
        book.options.short_initial,
        book.options.short_maintenance,
        book.assets.value.take(book.settle_asset),
    )


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("every", [False, True])
def test_fused_option_rows_equal_the_numpy_reference(seed: int, every: bool) -> None:
    inputs = option_inputs(seed)
    n = inputs[0].shape[0]  # type: ignore[attr-defined]
    rows = np.random.default_rng(seed).permutation(n)[: n // 2].astype(np.intp)
    got, want = np.full((n, 3), -1.0), np.full((n, 3), -1.0)
    others = revalue_option_rows(None if every else rows, *inputs, got)  # type: ignore[arg-type]
    expected = revalue_option_rows_reference(
        np.arange(n, dtype=np.intp) if every else rows,
        *inputs,  # type: ignore[arg-type]
        want,
    )
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(others, expected)
    assert others.size > 0
    assert (want[:, 0] != -1.0).any()


def test_fused_option_rows_equal_the_books_own_values() -> None:
    engine = small_book(3)
    book = engine.book
    n = book.positions.size
    pos = book.positions
    option = np.flatnonzero(book.contracts.kind[pos.instrument[:n]] == OPTION)
    upnl, initial, maintenance = figures(
        book, pos.instrument[option], pos.qty[option], pos.entry[option], pos.leverage[option]
    )
    got = np.zeros((n, 3))
    inputs = option_inputs(3)
    revalue_option_rows(option, *inputs, got)  # type: ignore[arg-type]
    np.testing.assert_array_equal(got[option], np.column_stack((upnl, initial, maintenance)))


@pytest.mark.parametrize("seed", range(3))
def test_fused_unit_sums_in_place_equal_the_bincount_reference(seed: int) -> None:
    """Only the chosen units' columns 1-4 are written; every other figure stays."""
    rng = np.random.default_rng(seed)
    n, units = 20_000, 700
    unit = rng.integers(0, units, n).astype(np.intp)
    qty = rng.normal(0.0, 1.0, n) * (rng.random(n) < 0.8)
    values = rng.normal(0.0, 1e4, (n, 3))
    chosen = np.flatnonzero(rng.random(units) < 0.6)
    before = rng.normal(0.0, 1.0, (units + 5, 5))  # spare capacity rows, as a table has
    got, want = before.copy(), before.copy()
    unit_sums_into(chosen, unit, qty, values, got)
    unit_sums_into_reference(chosen, unit, qty, values, want)
    np.testing.assert_array_equal(got, want)
    untouched = np.setdiff1d(np.arange(units + 5), chosen)
    np.testing.assert_array_equal(got[untouched], before[untouched])
    np.testing.assert_array_equal(got[chosen, 0], before[chosen, 0])
    # Plain sums by hand for one chosen unit.
    u = int(chosen[0])
    rows = (unit == u) & (qty != 0.0)
    assert got[u, 1] == pytest.approx(values[rows, 0].sum())
    assert got[u, 4] == pytest.approx(np.abs(values[rows, 0]).sum())


@pytest.mark.parametrize("seed", range(3))
def test_fused_touched_units_equal_the_numpy_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, units, symbols = 20_000, 3_000, 40
    unit = rng.integers(0, units, n).astype(np.intp)
    instrument = rng.integers(0, symbols, n).astype(np.intp)
    qty = rng.normal(0.0, 1.0, n) * (rng.random(n) < 0.7)
    ticked = rng.random(symbols) < 0.3
    got = touched_units(ticked, instrument, qty, unit, units)
    np.testing.assert_array_equal(
        got, touched_units_reference(ticked, instrument, qty, unit, units)
    )
    by_hand = sorted({int(unit[r]) for r in range(n) if qty[r] != 0.0 and ticked[instrument[r]]})
    assert got.tolist() == by_hand


@pytest.mark.parametrize("seed", range(3))
def test_fused_moved_rows_equal_the_numpy_reference(seed: int) -> None:
    book = small_book(seed).book
    n, pos = book.positions.size, book.positions
    moved = np.random.default_rng(seed).random(len(book.symbols)) < 0.5
    moved[0] = True  # the future: its rows come back for the numpy path
    results = []
    for kernel in (moved_rows, moved_rows_reference):
        figures, touched = np.full((n, 3), -1.0), np.zeros(book.units.size, dtype=np.bool_)
        others = kernel(
            moved,
            pos.instrument[:n],
            pos.qty,
            np.maximum(pos.unit, 0),
            book.contracts.kind,
            book.models.contract_size,
            book.mark,
            book.options.short_initial,
            book.options.short_maintenance,
            book.assets.value.take(book.settle_asset),
            figures,
            touched,
        )
        results.append((others, figures, touched))
    (got, want) = results
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    assert got[0].size > 0
    assert got[2].any()
