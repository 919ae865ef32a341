"""Benchmark the book's account name index (run by ``make bench``; JSON lines, ~20 s).

1,000,000 names, as the other benchmarks name accounts (``acct0``, ``acct1``, ...). Each
figure has as its baseline what the book kept before :class:`monitor.book.NameIndex`, a
dict of names to ids beside a list of the names, measured in the same run:

* ``name_index_memory``: what a fresh process holding the names gains in resident memory
  (after ``gc.collect()``, numba's kernels loaded before; the names' str objects count
  for the dict and list, as the book kept them; the index holds their bytes only).
* ``name_index_bulk_add``: adding them all at once (a snapshot restore, a bulk build).
* ``name_index_get``: a million single lookups by name, in random order (the
  per-ledger-event path: one or two per fill); ``name_index_get_missing``: names not in it.
* ``name_index_name_by_id``: a million single names by id (an event's account name);
  ``name_index_names_of``: the names of a sixth of the ids at once (a partition's
  snapshot).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from monitor.book import NameIndex
from monitor.book._name_kernels import warm_up

NAMES = 1_000_000


def emit(**figure: object) -> None:
    print(json.dumps(figure), flush=True)


def _get_each(get: Callable[[str], object], names: list[str]) -> list[object]:
    return [get(name) for name in names]


def best_of(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def account_names() -> list[str]:
    return [f"acct{i}" for i in range(NAMES)]


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _memory_child(kind: str) -> int:
    """Build one kind in this fresh process; print the resident bytes it added. The
    kernels are loaded first: the monitor has numba's machinery resident anyway."""
    warm_up()
    gc.collect()
    before = _resident_bytes()
    names = account_names()
    held: object
    if kind == "index":
        held = NameIndex()
        held.add_many(names)
        del names
    else:
        held = (dict(zip(names, range(NAMES), strict=True)), names)
    gc.collect()
    print(json.dumps({"bytes": _resident_bytes() - before}))
    return 0 if held else 1


def _memory_of(kind: str) -> int:
    done = subprocess.run(
        [sys.executable, __file__, "--memory-child", kind],
        check=True,
        capture_output=True,
        text=True,
    )
    added: int = json.loads(done.stdout.strip().splitlines()[-1])["bytes"]
    return added


def main() -> int:
    index_bytes, dict_bytes = _memory_of("index"), _memory_of("dict_and_list")
    emit(
        bench="names",
        figure="name_index_memory",
        names=NAMES,
        megabytes=round(index_bytes / 2**20, 1),
        bytes_per_name=round(index_bytes / NAMES, 1),
        baseline="dict_and_list",
        baseline_megabytes=round(dict_bytes / 2**20, 1),
        ratio=round(index_bytes / dict_bytes, 3),
    )

    names = account_names()
    bulk = best_of(3, lambda: NameIndex().add_many(names))
    baseline = best_of(3, lambda: (dict(zip(names, range(NAMES), strict=True)), list(names)))
    emit(
        bench="names",
        figure="name_index_bulk_add",
        names=NAMES,
        seconds=round(bulk, 3),
        baseline="dict_and_list",
        baseline_seconds=round(baseline, 3),
        ratio=round(bulk / baseline, 1),
    )

    index = NameIndex()
    index.add_many(names)
    ids = dict(zip(names, range(NAMES), strict=True))
    order = np.random.default_rng(3).permutation(NAMES).tolist()
    shuffled = [names[i] for i in order]
    missing = [f"other{i}" for i in range(NAMES)]
    for label, probes in (("name_index_get", shuffled), ("name_index_get_missing", missing)):
        single = best_of(3, partial(_get_each, index.get, probes))
        baseline = best_of(3, partial(_get_each, ids.get, probes))
        emit(
            bench="names",
            figure=label,
            lookups=NAMES,
            microseconds_each=round(single / NAMES * 1e6, 3),
            baseline="dict",
            baseline_microseconds_each=round(baseline / NAMES * 1e6, 3),
            ratio=round(single / baseline, 1),
            target="a few microseconds each",
            met=single / NAMES <= 3e-6,
        )

    by_id = index.by_id
    single = best_of(3, lambda: [by_id[i] for i in order])
    baseline = best_of(3, lambda: [names[i] for i in order])
    emit(
        bench="names",
        figure="name_index_name_by_id",
        lookups=NAMES,
        microseconds_each=round(single / NAMES * 1e6, 3),
        baseline="list",
        baseline_microseconds_each=round(baseline / NAMES * 1e6, 3),
        ratio=round(single / baseline, 1),
    )
    partition = np.arange(0, NAMES, 6)
    partition_list = partition.tolist()
    bulk = best_of(3, lambda: index.names_of(partition))
    baseline = best_of(3, lambda: [names[i] for i in partition_list])
    emit(
        bench="names",
        figure="name_index_names_of",
        names=partition.shape[0],
        seconds=round(bulk, 4),
        baseline="list",
        baseline_seconds=round(baseline, 4),
        ratio=round(bulk / baseline, 1),
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--memory-child":
        sys.exit(_memory_child(sys.argv[2]))
    sys.exit(main())
