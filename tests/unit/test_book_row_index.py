"""The compact (account, instrument) -> row index answers as a dict would."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.book._row_index import RowIndex

pytestmark = pytest.mark.unit


def test_bulk_and_single_rows_are_found_like_a_dict() -> None:
    rng = np.random.default_rng(3)
    instruments = 50
    pairs = rng.choice(20_000 * instruments, 30_000, replace=False)
    account, instrument = pairs // instruments, pairs % instruments
    index, reference = RowIndex(instruments), {}
    index.add_many(account[:10_000], instrument[:10_000], np.arange(10_000))
    reference.update(
        zip(
            zip(account[:10_000].tolist(), instrument[:10_000].tolist(), strict=True),
            range(10_000),
            strict=True,
        )
    )
    for row in range(10_000, 30_000):  # one at a time, crossing a merge into the arrays
        pair = (int(account[row]), int(instrument[row]))
        index[pair] = row
        reference[pair] = row
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
