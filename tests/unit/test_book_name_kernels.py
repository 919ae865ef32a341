"""The name index's compiled passes agree with their readable references, hash clashes,
probes that wrap around the table and names met twice included."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from numpy.typing import NDArray

from monitor.book._name_kernels import EMPTY, gather, gather_reference, place, place_reference

pytestmark = pytest.mark.unit

NAMES = ["", "a", "b", "ab", "é", "日本", "😀", "\ud800", "a\x00", "x" * 40, "e\u0301"]


def packed(names: list[str]) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """The names' bytes one after the other, and their offsets."""
    parts = [name.encode("utf-8", "surrogatepass") for name in names]
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    return np.frombuffer(b"".join(parts) or b"\0", dtype=np.uint8).copy(), offsets


@pytest.mark.parametrize("seed", range(20))
def test_place_fills_the_same_slots_and_finds_the_same_clash_as_its_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Few distinct hashes (clashes of different names) and names drawn with repeats.
    names = [NAMES[k] for k in rng.integers(0, len(NAMES), int(rng.integers(1, 30)))]
    data, offsets = packed(names)
    hashes = rng.choice(np.array([0, 1, -1, 7, 2**62 + 3, -(2**63)], dtype=np.int64), len(names))
    size = 1 << int(np.ceil(np.log2(2 * len(names) + 1)))
    first = int(rng.integers(0, len(names)))
    results = []
    for placing in (place, place_reference):
        slots = np.full(size, EMPTY, dtype=np.int32)
        before = placing(slots, hashes, offsets, data, 0, first)
        clash = placing(slots, hashes, offsets, data, first, len(names))
        results.append((before, clash, slots))
    (before, clash, slots), (ref_before, ref_clash, ref_slots) = results
    assert (before, clash) == (ref_before, ref_clash)
    np.testing.assert_array_equal(slots, ref_slots)


def test_place_reports_the_first_name_met_again_and_places_every_distinct_one() -> None:
    names = ["a", "b", "a", "c"]
    data, offsets = packed(names)
    hashes = np.array([5, 5, 5, 6], dtype=np.int64)  # "a" and "b" clash
    slots = np.full(8, EMPTY, dtype=np.int32)
    assert place(slots, hashes, offsets, data, 0, 2) == -1
    assert place(slots, hashes, offsets, data, 2, 4) == 2
    assert slots[5:].tolist() == [0, 1, EMPTY]  # "b" probed on from "a"'s slot
    assert place(slots, hashes, offsets, data, 3, 4) == -1
    assert slots.tolist() == [EMPTY] * 5 + [0, 1, 3]  # the second "a" left no trace


def test_a_probe_wraps_around_the_end_of_the_table() -> None:
    names = ["p", "q", "r"]
    data, offsets = packed(names)
    hashes = np.array([3, 3, 3], dtype=np.int64)
    for placing in (place, place_reference):
        slots = np.full(4, EMPTY, dtype=np.int32)
        assert placing(slots, hashes, offsets, data, 0, 3) == -1
        assert slots.tolist() == [1, 2, EMPTY, 0]


@pytest.mark.parametrize("seed", range(10))
def test_gather_packs_the_same_bytes_and_character_bounds_as_its_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    data, offsets = packed(NAMES)
    ids = rng.integers(0, len(NAMES), int(rng.integers(0, 40))).astype(np.int64)
    got, bounds = gather(data, offsets, ids)
    want, want_bounds = gather_reference(data, offsets, ids)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(bounds, want_bounds)
    text = got.tobytes().decode("utf-8", "surrogatepass")
    cuts = bounds.tolist()
    assert [text[a:b] for a, b in pairwise(cuts)] == [NAMES[i] for i in ids.tolist()]
