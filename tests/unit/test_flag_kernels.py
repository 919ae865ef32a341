"""Which units a tick judges (``monitor.engine._flag_kernels``) and the holder index's band
summaries (``monitor.book._holders``): the kernels equal their numpy references, both
flag exactly what a scan of every open row flags, and the summaries stay conservative
(never hide a row) through holders coming and going, segments moving and bands changing.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from monitor.book import HOLDER_BLOCK as BLOCK
from monitor.book import NO_ROW, Holders
from monitor.engine._flag_kernels import (
    CHECK,
    FORCE,
    SCATTERED,
    admit_bands,
    admit_bands_reference,
    blocks_to_read_reference,
    flag_holders,
    flag_holders_reference,
    flag_unbanded,
    flag_unbanded_reference,
)
from monitor.schema import PriceTick
from tests.unit.test_band_kernels import banded_book

pytestmark = pytest.mark.unit


def every_row_flags(
    mode: NDArray[np.int8],
    instrument: NDArray[np.intp],
    unit: NDArray[np.intp],
    qty: NDArray[np.float64],
    low: NDArray[np.float32],
    high: NDArray[np.float32],
    mark: NDArray[np.float64],
) -> NDArray[np.intp]:
    """The obvious answer: every open row, one at a time."""
    found = set()
    for r in range(instrument.shape[0]):
        how, m = mode[instrument[r]], mark[instrument[r]]
        if qty[r] == 0.0 or unit[r] == NO_ROW or how == 0:
            continue
        if how == FORCE or not (low[r] < m < high[r]):
            found.add(int(unit[r]))
    return np.array(sorted(found), dtype=np.intp)


def summaries_admit_every_holder(holders: Holders, low: NDArray[np.float32],
                                 high: NDArray[np.float32]) -> bool:  # fmt: skip
    exact_low, exact_high = holders.exact_summaries(low, high)
    return bool(np.all(holders.block_low >= exact_low) and np.all(holders.block_high <= exact_high))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_flag_kernel_equals_its_reference_and_a_scan_of_every_row(seed: int) -> None:
    engine = banded_book(seed)
    book, rng = engine.book, np.random.default_rng(seed)
    pos, n = book.positions, book.positions.size
    holders = pos.holders
    assert summaries_admit_every_holder(holders, pos.band_low, pos.band_high)
    # Every row banded around its mark (a third of this book's units are near a
    # threshold and have none), the summaries exact.
    pos.band_low[pos.band_low == np.inf] = 1.0
    pos.band_high[pos.band_high == -np.inf] = 1e9
    holders.block_low, holders.block_high = holders.exact_summaries(pos.band_low, pos.band_high)
    paths = set()
    for step in range(6):
        if step % 2:  # many bands left: one pass over every row
            mode = rng.choice(np.array([0, CHECK, FORCE], dtype=np.int8), len(book.symbols))
            mark = book.mark * rng.choice([1.0, 1.0001, 0.999, 1.02], len(book.symbols))
        else:  # where the book was judged, one instrument forced: its blocks are read
            mode = np.full(len(book.symbols), CHECK, dtype=np.int8)
            mode[step % len(book.symbols)] = FORCE
            mark = book.mark.copy()
        read = blocks_to_read_reference(
            mode, holders.start, holders.count, mark, holders.block_low, holders.block_high
        )
        paths.add(read * SCATTERED > n)
        expected = every_row_flags(
            mode, pos.instrument[:n], pos.unit[:n], pos.qty[:n], pos.band_low[:n],
            pos.band_high[:n], mark,
        )  # fmt: skip
        results = []
        for kernel in (flag_holders, flag_holders_reference):
            block_low, block_high = holders.block_low.copy(), holders.block_high.copy()
            mask = np.zeros(book.units.size, dtype=np.bool_)
            out = np.full(book.units.size, -7, dtype=np.intp)
            count = kernel(
                mode, holders.rows, holders.start, holders.count, pos.instrument[:n],
                pos.holder_slot, pos.unit, pos.band_low, pos.band_high, mark, block_low,
                block_high, mask, out,
            )  # fmt: skip
            assert (out[count:] == -7).all()
            listed = np.sort(out[:count])
            np.testing.assert_array_equal(listed, np.flatnonzero(mask))  # each once
            results.append((listed, block_low, block_high))
        np.testing.assert_array_equal(results[0][0], expected)
        np.testing.assert_array_equal(results[1][0], expected)
        np.testing.assert_array_equal(results[0][1], results[1][1])
        np.testing.assert_array_equal(results[0][2], results[1][2])
        holders.block_low[:], holders.block_high[:] = results[0][1], results[0][2]
        # What it read is exact now; what it skipped still admits every row.
        assert summaries_admit_every_holder(holders, pos.band_low, pos.band_high)
        assert 0 < expected.size < book.units.size
    assert paths == {True, False}  # both ways of reading were taken


@pytest.mark.parametrize("kernel", [flag_holders, flag_holders_reference])
def test_a_tick_reads_only_the_blocks_whose_summary_its_mark_left(kernel: object) -> None:
    engine = banded_book(5)
    book, rng = engine.book, np.random.default_rng(5)
    pos, holders, n = book.positions, book.positions.holders, book.positions.size
    mode = np.full(len(book.symbols), CHECK, dtype=np.int8)
    mark = book.mark
    # Every row banded around its mark, the summaries exact...
    low = np.where(pos.band_low == np.inf, np.float32(1.0), pos.band_low)
    high = np.where(pos.band_high == -np.inf, np.float32(1e9), pos.band_high)
    holders.block_low, holders.block_high = holders.exact_summaries(low, high)
    # ...then a few rows' marks leave their band (admitted, as after ``band_units``),
    # and every row of the other blocks would be flagged if it were read.
    held = np.flatnonzero(pos.qty[:n] != 0.0)
    left = rng.choice(held, 20, replace=False)
    low[left] = mark[pos.instrument[left]] * 1.001
    at = holders.start[pos.instrument[left]] + pos.holder_slot[left]
    for slot_at, r in zip(at.tolist(), left.tolist(), strict=True):
        holders.admit(slot_at, float(low[r]), float(high[r]))
    read = np.zeros(holders.block_low.shape[0], dtype=np.bool_)
    read[at // BLOCK] = True
    block_of_row = np.full(pos.size, -1, dtype=np.intp)
    block_of_row[held] = (holders.start[pos.instrument[held]] + pos.holder_slot[held]) // BLOCK
    unread = held[~read[block_of_row[held]]]
    assert unread.size > held.size // 2
    low[unread] = np.inf
    flagged = np.zeros(book.units.size, dtype=np.bool_)
    out = np.zeros(book.units.size, dtype=np.intp)
    count = kernel(  # type: ignore[operator]
        mode, holders.rows, holders.start, holders.count, pos.instrument[:n], pos.holder_slot,
        pos.unit, low, high, mark, holders.block_low, holders.block_high, flagged, out,
    )  # fmt: skip
    in_read = held[read[block_of_row[held]]]
    expected = every_row_flags(
        mode, pos.instrument[in_read], pos.unit[in_read], pos.qty[in_read], low[in_read],
        high[in_read], mark,
    )  # fmt: skip
    np.testing.assert_array_equal(np.sort(out[:count]), expected)
    np.testing.assert_array_equal(expected, np.unique(pos.unit[left]))


@pytest.mark.parametrize("seed", [6, 7])
def test_the_admit_kernel_equals_its_reference(seed: int) -> None:
    engine = banded_book(seed)
    book, rng = engine.book, np.random.default_rng(seed)
    pos, table, holders = book.positions, book.units, book.positions.holders
    units = np.sort(rng.choice(table.size, table.size // 3, replace=False)).astype(np.intp)
    pos.band_low[: pos.size] *= rng.uniform(0.99, 1.01, pos.size).astype(np.float32)
    results = []
    for kernel in (admit_bands, admit_bands_reference):
        block_low, block_high = holders.block_low.copy(), holders.block_high.copy()
        kernel(units, table.head, pos.unit_next, pos.instrument, holders.start,
               pos.holder_slot, pos.band_low, pos.band_high, block_low, block_high)  # fmt: skip
        results.append((block_low, block_high))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


@pytest.mark.parametrize("seed", [8, 9])
def test_the_unbanded_flag_kernel_equals_its_reference_and_the_obvious_answer(seed: int) -> None:
    """The unbanded units holding a moved instrument, appended after what the tick
    already flagged, each once."""
    engine = banded_book(seed)
    book, rng = engine.book, np.random.default_rng(seed)
    pos, table = book.positions, book.units
    candidates = np.flatnonzero(table.unbanded[: table.size])
    assert candidates.size > 50
    mode = np.zeros(len(book.symbols), dtype=np.int8)
    mode[[1, 4]] = CHECK
    mode[5] = FORCE
    already = rng.choice(table.size, 40, replace=False)
    n = pos.size
    held = pos.unit[:n][(pos.unit[:n] != NO_ROW) & (mode[pos.instrument[:n]] != 0)]
    want = set(np.intersect1d(candidates, held).tolist()) | set(already.tolist())
    results = []
    for kernel in (flag_unbanded, flag_unbanded_reference):
        flagged = np.zeros(table.size, dtype=np.bool_)
        out = np.full(table.size, -1, dtype=np.intp)
        flagged[already] = True
        out[: already.size] = already
        found = kernel(mode, candidates, table.head, pos.unit_next, pos.instrument, flagged,
                       out, already.size)  # fmt: skip
        listed = out[:found]
        assert np.unique(listed).size == found  # each once
        assert set(listed.tolist()) == want
        np.testing.assert_array_equal(np.flatnonzero(flagged), np.sort(listed))
        results.append(listed)
    np.testing.assert_array_equal(results[0], results[1])


def test_summaries_stay_conservative_as_holders_come_go_and_move() -> None:
    rng = np.random.default_rng(11)
    n_instruments, n_rows = 5, 6_000
    instrument = rng.integers(0, n_instruments, n_rows).astype(np.intp)
    low = rng.uniform(90, 100, n_rows).astype(np.float32)
    high = rng.uniform(100, 110, n_rows).astype(np.float32)
    slot = np.full(n_rows, NO_ROW, dtype=np.intp)
    holders = Holders(n_instruments)
    holding = np.zeros(n_rows, dtype=np.bool_)
    # Bulk first (as a snapshot load), then single changes that make segments move and
    # the array be laid out afresh.
    for ix in range(n_instruments):
        rows = np.flatnonzero(instrument == ix)[:100]
        holders.replace(ix, rows, slot, low, high)
        holding[rows] = True
    for step in range(30_000):
        r = int(rng.integers(n_rows))
        if holding[r]:
            holders.remove(int(instrument[r]), r, slot, low, high)
        else:
            holders.add(int(instrument[r]), r, slot, low, high)
        holding[r] = not holding[r]
        if step % 7 == 0:  # a band rewritten (narrowed or widened), then admitted
            w = int(rng.integers(n_rows))
            low[w], high[w] = rng.uniform(90, 100), rng.uniform(100, 110)
            if holding[w]:
                at = int(holders.start[instrument[w]] + slot[w])
                holders.admit(at, float(low[w]), float(high[w]))
    assert summaries_admit_every_holder(holders, low, high)
    for ix in range(n_instruments):
        listed = holders.of(ix)
        expected = np.flatnonzero(holding & (instrument == ix))
        np.testing.assert_array_equal(np.sort(listed), expected)
        np.testing.assert_array_equal(slot[listed], np.arange(listed.size))
    assert (slot[~holding] == NO_ROW).all()
    assert holders.rows.shape[0] > n_instruments * BLOCK  # it did grow


def test_dropped_bands_make_the_next_tick_read_every_holder() -> None:
    engine = banded_book(8, accounts=500)
    book = engine.book
    pos, n = book.positions, book.positions.size
    engine.full_recompute()
    assert (pos.holders.block_low == np.inf).all()
    ticks = [PriceTick(symbol=s, mark_price=float(m) * 1.000001, ts=5)
             for s, m in zip(book.symbols, book.mark, strict=True)]  # fmt: skip
    engine.apply([], ticks, 5)
    holders = np.unique(pos.unit[:n][pos.unit[:n] != NO_ROW])
    assert engine.revalued_by_prices == holders.size
    assert summaries_admit_every_holder(pos.holders, pos.band_low, pos.band_high)
