"""The compact (account, instrument) -> row index answers as a dict would."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.book._row_index import RowIndex

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("pending_max", "merge_min"),
    [(8192, 65536), (64, 512)],  # as the book runs it, and crossing both merges often
)
def test_bulk_and_single_rows_are_found_like_a_dict(pending_max: int, merge_min: int) -> None:
    rng = np.random.default_rng(3)
    instruments = 50
    pairs = rng.choice(20_000 * instruments, 30_000, replace=False)
    account, instrument = pairs // instruments, pairs % instruments
    index, reference = RowIndex(instruments, pending_max, merge_min), {}
    index.add_many(account[:10_000], instrument[:10_000], np.arange(10_000))
    reference.update(
        zip(
            zip(account[:10_000].tolist(), instrument[:10_000].tolist(), strict=True),
            range(10_000),
            strict=True,
        )
    )
    for row in range(10_000, 30_000):  # one at a time
        pair = (int(account[row]), int(instrument[row]))
        index[pair] = row
        reference[pair] = row
        if row % 997 == 0:
            assert len(index) == len(reference)
            assert index[pair] == row
    assert len(index) == len(reference)
    for pair, row in reference.items():
        assert index[pair] == row
    missing = [
        (int(a), int(i))
        for a, i in zip(rng.integers(0, 20_000, 500), rng.integers(0, 50, 500), strict=True)
    ]
    for pair in missing:
        assert index.get(pair, -1) == reference.get(pair, -1)
    with pytest.raises(KeyError):
        index[(20_001, 0)]


def test_a_pair_loaded_twice_is_refused() -> None:
    index = RowIndex(4)
    index.add_many(np.array([1, 2]), np.array([0, 3]), np.arange(2))
    with pytest.raises(ValueError, match="more than once"):
        index.add_many(np.array([2]), np.array([3]), np.array([5]))
    with pytest.raises(ValueError, match="more than once"):
        RowIndex(4).add_many(np.array([1, 1]), np.array([0, 0]), np.arange(2))


def test_a_pair_indexed_twice_one_at_a_time_is_refused_at_the_merge() -> None:
    index = RowIndex(4, pending_max=2, merge_min=4)
    index[(2, 1)] = 0
    index[(3, 1)] = 1  # the dict is full: both go to the recent arrays
    index[(2, 1)] = 2
    with pytest.raises(ValueError, match="more than once"):
        index[(3, 2)] = 3  # the next merge finds (2, 1) there already
