"""The compact account name index answers as a dict of names to ids and a list of names would."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.book import NameIndex

pytestmark = pytest.mark.unit

UNUSUAL = [
    "",  # the schema allows an empty account id
    "é",
    "日本語",
    "😀",
    "e\u0301",  # a combining accent: two characters
    "a\x00b",
    "\ud800",  # a lone surrogate (a JSON "\ud800" escape decodes to one)
    "\udfff\ud83d",
    "x" * 256,
]


def test_names_added_one_at_a_time_across_many_doublings_keep_their_ids() -> None:
    index = NameIndex()
    names = [f"acct{i}" for i in range(20_000)]
    for i, name in enumerate(names):
        assert index.add(name) == i
    assert len(index) == len(names)
    assert all(index.get(name) == i for i, name in enumerate(names))
    assert all(index.name(i) == name for i, name in enumerate(names))


def test_the_table_stays_at_most_half_full_and_a_power_of_two_long() -> None:
    index = NameIndex()
    for block in range(12):
        index.add_many([f"b{block}-{i}" for i in range(1 << block)])
        for i in range(block):
            index.add(f"s{block}-{i}")
        slots = index._slots.shape[0]
        assert slots & (slots - 1) == 0
        assert 2 * len(index) <= slots
        assert int((index._slots >= 0).sum()) == len(index)


def test_unicode_names_are_found_by_name_and_read_back_by_id() -> None:
    index = NameIndex()
    index.add_many(UNUSUAL[:4])
    for name in UNUSUAL[4:]:
        index.add(name)
    assert [index[name] for name in UNUSUAL] == list(range(len(UNUSUAL)))
    assert [index.name(i) for i in range(len(UNUSUAL))] == UNUSUAL
    assert index.names_of(np.arange(len(UNUSUAL))) == UNUSUAL
    assert list(index) == UNUSUAL


def test_a_missing_name_has_no_id() -> None:
    index = NameIndex()
    index.add_many(["a", "b"])
    assert index.get("c") is None
    assert index.get("c", -1) == -1
    assert "c" not in index
    stranger: object = 1
    assert stranger not in index
    with pytest.raises(KeyError):
        index["c"]
    assert NameIndex().get("") is None


def test_bulk_and_single_adds_mixed_give_ids_in_order_like_a_list() -> None:
    rng = np.random.default_rng(5)
    index, reference = NameIndex(), list[str]()
    counter = 0
    for _ in range(60):
        if rng.random() < 0.5:
            batch = [f"n{counter + k}-{'é' * (k % 3)}" for k in range(int(rng.integers(0, 500)))]
            assert index.add_many(batch) == len(reference)
            reference.extend(batch)
            counter += len(batch)
        else:
            name = f"single{counter}"
            assert index.add(name) == len(reference)
            reference.append(name)
            counter += 1
    assert list(index.by_id) == reference
    assert dict(index) == {name: i for i, name in enumerate(reference)}


def test_names_of_ids_come_in_the_order_asked_repeats_included() -> None:
    index = NameIndex()
    names = [f"acct{i}" for i in range(1_000)] + UNUSUAL
    index.add_many(names)
    ids = np.random.default_rng(2).integers(0, len(names), 5_000)
    assert index.names_of(ids) == [names[i] for i in ids.tolist()]
    assert index.names_of(np.empty(0, dtype=np.intp)) == []
    assert index.names_of(np.array([3], dtype=np.int32)) == ["acct3"]
    with pytest.raises(IndexError):
        index.names_of(np.array([len(names)]))
    with pytest.raises(IndexError):
        index.names_of(np.array([-1]))
    with pytest.raises(IndexError):
        index.name(len(names))


def test_a_name_is_never_added_twice() -> None:
    index = NameIndex()
    index.add_many(["a", "b", "c"])
    with pytest.raises(ValueError, match="'b' is in the index already"):
        index.add("b")
    with pytest.raises(ValueError, match="'c' is in the index already or given twice"):
        index.add_many(["d", "e", "c", "f"])
    with pytest.raises(ValueError, match="'d' is in the index already or given twice"):
        index.add_many(["d", "e", "d"])
    assert len(index) == 3
    assert [index.get(name) for name in "abcdef"] == [0, 1, 2, None, None, None]
    assert index.add_many(["d", "e", "f"]) == 3
    assert [index.get(name) for name in "abcdef"] == list(range(6))


def test_a_refused_bulk_add_that_grew_the_table_leaves_every_old_name_found() -> None:
    index = NameIndex()
    index.add_many([f"old{i}" for i in range(100)])
    with pytest.raises(ValueError, match="'old7'"):
        index.add_many([f"new{i}" for i in range(10_000)] + ["old7"])
    assert len(index) == 100
    assert all(index[f"old{i}"] == i for i in range(100))
    assert index.get("new0") is None
    assert index.add("new0") == 100


def test_the_names_by_id_view_reads_like_a_list_and_grows_with_the_index() -> None:
    index = NameIndex()
    view = index.by_id
    assert len(view) == 0
    assert list(view) == []
    index.add_many(["a", "b", "c", "d"])
    index.add("é")
    reference = ["a", "b", "c", "d", "é"]
    assert len(view) == 5
    assert view[-1] == "é"
    assert view[np.int64(2)] == "c"
    assert view[1:4] == reference[1:4]
    assert view[::-2] == reference[::-2]
    assert list(view) == reference
    ids = np.array([4, 0, 4, 2], dtype=np.int32)  # a column's ids, in any order, repeated
    assert view.of_ids(ids) == [reference[i] for i in ids.tolist()]
    assert view.of_ids(ids[:0]) == []
    with pytest.raises(IndexError):
        view[5]
    with pytest.raises(IndexError):
        view[-6]
    with pytest.raises(IndexError):
        view.of_ids(np.array([5]))


def test_iterating_a_large_index_crosses_its_blocks_in_order() -> None:
    index = NameIndex()
    names = [f"acct{i}" for i in range(150_000)]
    index.add_many(names)
    assert list(index) == names


def test_the_names_by_id_compare_equal_to_a_list_of_the_same_names() -> None:
    index = NameIndex()
    index.add_many(["a", "b", "ç"])
    assert index.by_id == ["a", "b", "ç"]
    assert index.by_id == ("a", "b", "ç")
    assert index.by_id != ["a", "b"]
    assert index.by_id != ["a", "b", "c"]
    other = NameIndex()
    other.add_many(["a", "b", "ç"])
    assert index.by_id == other.by_id
