"""The snapshot copy's compiled passes agree with their readable references: owners out of
range and without a place, empty partitions, flat rows, isolated units and row lists
walked from their heads included."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from numpy.typing import NDArray

from monitor.book._image_kernels import (
    copy_rows,
    copy_rows_reference,
    group,
    group_reference,
    rank_scratch,
)
from monitor.book._snapshot import OPEN, OPEN_ISOLATED, WITH_ISOLATED_UNIT

pytestmark = pytest.mark.unit

NO_ROW = -1


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("owner_type", [np.intp, np.int32])
def test_group_matches_its_reference(seed: int, owner_type: type[np.integer]) -> None:
    rng = np.random.default_rng(seed)
    accounts = int(rng.integers(0, 50))
    members = np.sort(rng.choice(accounts, int(rng.integers(0, accounts + 1)), replace=False))
    place = np.full(accounts, -1, dtype=np.int32)
    place[members] = np.arange(members.size, dtype=np.int32)
    # Owners of every account, plus a few outside the table (a forgotten or bad owner).
    owner = rng.integers(-2, accounts + 3, int(rng.integers(0, 200))).astype(owner_type)
    block = int(rng.integers(1, 8))
    got = group(owner, place, int(members.size), block)
    want = group_reference(owner, place, int(members.size), block)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


def test_group_keeps_index_order_within_a_block_and_bounds_each_block() -> None:
    place = np.array([0, -1, 1, 2], dtype=np.int32)  # accounts 0, 2, 3 at places 0, 1, 2
    owner = np.array([3, 0, 1, 2, 0, 3, 9, -1], dtype=np.intp)
    items, at, bounds = group(owner, place, 3, 2)  # blocks: places {0, 1}, {2}
    assert items.tolist() == [1, 3, 4, 0, 5]
    assert at.tolist() == [0, 1, 0, 2, 2]
    assert bounds.tolist() == [0, 3, 5]
    empty = group(owner, np.full(4, -1, dtype=np.int32), 0, 2)
    assert [part.tolist() for part in empty] == [[], [], [0]]


def random_lists(
    rng: np.random.Generator, n_rows: int, n_units: int
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp], NDArray[np.intp]]:
    """Each row in a unit's list (or flat), the lists in a random order: ``unit``,
    ``isolated_unit``, ``head`` and ``unit_next``."""
    unit = np.where(rng.random(n_rows) < 0.2, NO_ROW, rng.integers(0, n_units, n_rows))
    isolated = np.where(
        rng.random(n_rows) < 0.5, NO_ROW, np.where(rng.random(n_rows) < 0.5, unit, n_units - 1)
    )
    head = np.full(n_units, NO_ROW, dtype=np.intp)
    unit_next = np.full(n_rows, NO_ROW, dtype=np.intp)
    for row in rng.permutation(n_rows):
        if unit[row] != NO_ROW:  # push at the head, as the book links a row
            unit_next[row] = head[unit[row]]
            head[unit[row]] = row
    return unit.astype(np.intp), isolated.astype(np.intp), head, unit_next


@pytest.mark.parametrize("seed", range(30))
def test_copy_rows_matches_its_reference_byte_for_byte(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_rows, n_units = int(rng.integers(1, 120)), int(rng.integers(1, 20))
    unit, isolated, head, unit_next = random_lists(rng, n_rows, n_units)
    instrument = rng.integers(0, 9, n_rows).astype(np.intp)
    figures = tuple(rng.normal(size=n_rows) for _ in range(4))  # qty, entry, leverage, margin
    figures[2][rng.random(n_rows) < 0.3] = np.nan  # leverage not set
    rows = rng.permutation(n_rows)[: int(rng.integers(0, n_rows + 1))].astype(np.intp)
    got = copy_rows(rows, instrument, figures, unit, isolated, head, unit_next)  # type: ignore[arg-type]
    want = copy_rows_reference(rows, instrument, figures, unit, isolated, head, unit_next)  # type: ignore[arg-type]
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype
        assert g.tobytes() == w.tobytes()


@pytest.mark.parametrize("seed", range(20))
def test_copy_rows_in_parts_holding_whole_lists_with_one_scratch_matches_the_whole(
    seed: int,
) -> None:
    """A snapshot copies a partition's rows in parts of whole accounts, so each unit's
    list is in one part, sharing one scratch: together the parts are the whole."""
    rng = np.random.default_rng(seed)
    n_rows, n_units = int(rng.integers(1, 150)), int(rng.integers(1, 25))
    unit, isolated, head, unit_next = random_lists(rng, n_rows, n_units)
    instrument = rng.integers(0, 9, n_rows).astype(np.intp)
    figures = tuple(rng.normal(size=n_rows) for _ in range(4))
    rows = rng.permutation(n_rows)[: int(rng.integers(1, n_rows + 1))].astype(np.intp)
    rows = rows[np.argsort(unit[rows], kind="stable")]  # each list's rows side by side
    starts = [0, *np.flatnonzero(np.diff(unit[rows]) != 0) + 1, rows.size]
    kept = sorted({0, rows.size, *rng.choice(starts, min(len(starts), 4)).tolist()})
    scratch = rank_scratch(instrument, head)
    parts = [
        copy_rows(rows[a:b], instrument, figures, unit, isolated, head, unit_next, scratch)  # type: ignore[arg-type]
        for a, b in itertools.pairwise(kept)
    ]
    want = copy_rows_reference(rows, instrument, figures, unit, isolated, head, unit_next)  # type: ignore[arg-type]
    assert len(parts) == len(kept) - 1
    for k, w in enumerate(want):
        got = np.concatenate([part[k] for part in parts])
        assert got.dtype == w.dtype
        assert got.tobytes() == w.tobytes()


def test_copy_rows_ranks_from_the_head_and_flags_each_row() -> None:
    # Unit 0 lists rows 2 -> 0 -> 3; row 1 is flat; unit 1 (isolated) lists row 4.
    unit = np.array([0, NO_ROW, 0, 0, 1], dtype=np.intp)
    isolated = np.array([NO_ROW, 1, NO_ROW, NO_ROW, 1], dtype=np.intp)
    head = np.array([2, 4], dtype=np.intp)
    unit_next = np.array([3, NO_ROW, 0, NO_ROW, NO_ROW], dtype=np.intp)
    figures = tuple(np.arange(5, dtype=np.float64) + k for k in range(4))
    rows = np.array([3, 1, 4, 0], dtype=np.intp)
    columns = copy_rows(rows, np.arange(5, dtype=np.intp), figures, unit, isolated, head, unit_next)  # type: ignore[arg-type]
    symbol, qty, _, _, margin, flags, rank, own = columns
    assert symbol.tolist() == [3, 1, 4, 0]
    assert qty.tolist() == [3.0, 1.0, 4.0, 0.0]
    assert margin.tolist() == [6.0, 4.0, 7.0, 3.0]
    assert rank.tolist() == [2, -1, 0, 1]
    assert flags.tolist() == [
        OPEN,
        WITH_ISOLATED_UNIT,
        OPEN | OPEN_ISOLATED | WITH_ISOLATED_UNIT,
        OPEN,
    ]
    assert own.tolist() == [NO_ROW, 1, 1, NO_ROW]
