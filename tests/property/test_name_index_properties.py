"""The compact name index behaves as a dict of names to ids beside a list of the names,
whatever the names (any Unicode, empty, lone surrogates) and however they are added."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.book import NameIndex

# A small alphabet, so names (and attempts to add one twice) repeat often; every kind of
# UTF-8 length, a NUL and a lone surrogate among the characters.
NAME = st.text(alphabet=st.sampled_from(["a", "b", "\x00", "é", "日", "😀", "\ud800"]), max_size=4)
ADD = st.tuples(st.just("add"), NAME)
ADD_MANY = st.tuples(st.just("add_many"), st.lists(NAME, max_size=40))


class Reference:
    """A dict and a list, refusing a name met before as the index does."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.names: list[str] = []

    def add_many(self, names: list[str]) -> int:
        if len(set(names)) != len(names) or any(name in self.ids for name in names):
            raise ValueError("met before")
        first = len(self.names)
        self.ids.update(zip(names, range(first, first + len(names)), strict=True))
        self.names.extend(names)
        return first


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(ADD, ADD_MANY), max_size=30), st.lists(NAME, max_size=20), st.data())
def test_the_index_answers_as_a_dict_and_a_list_would(
    operations: list[tuple[str, str | list[str]]], probes: list[str], data: st.DataObject
) -> None:
    index, reference = NameIndex(), Reference()
    for kind, argument in operations:
        names = [argument] if isinstance(argument, str) else argument
        try:
            want: int | None = reference.add_many(names)
        except ValueError:
            want = None
        try:
            got: int | None = index.add(names[0]) if kind == "add" else index.add_many(names)
        except ValueError:
            got = None
        assert got == want
        assert len(index) == len(reference.names)
    for name in [*reference.names, *probes]:
        assert index.get(name) == reference.ids.get(name)
        assert (name in index) == (name in reference.ids)
    assert list(index.by_id) == reference.names
    ids = data.draw(st.lists(st.integers(0, max(0, len(reference.names) - 1)), max_size=30))
    if reference.names:
        assert index.names_of(np.array(ids, dtype=np.int64)) == [reference.names[i] for i in ids]
        assert [index.name(i) for i in ids] == [reference.names[i] for i in ids]
