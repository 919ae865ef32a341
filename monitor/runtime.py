"""The garbage collector's settings while ``liqmon run`` runs: few young collections.

Until the eighteenth stop every price record was an aiokafka ``ConsumerRecord``, which
the collector tracks (now a ``LeanRecord``, which it does not: ``streams._lean``). At
CPython's default first threshold (700) a young collection ran every few hundred
records and walked the records of the chunk being decoded; at a million accounts and
100,000 ticks/s the monitor's log showed young collections of 3-15 ms (wall time, on a
loaded host) several times a second, up to ten a second while it caught up after a
stall, which made the catching up slower still. The records die by reference counting
as soon as they are decoded; the collector only has cyclic garbage to find, of which
the service makes little, so :data:`GC_THRESHOLDS` lets a young collection wait for
50,000 net allocations of tracked objects. The rebuilt book is frozen out of the
collector's sight (``gc.freeze``, :mod:`monitor.rebalancing`).

Measured: ``bench_intake.py`` (``intake_gc``, in process) and ``bench_e2e.py`` (docs/operations.md,
twelfth stop).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

__all__ = ["GC_THRESHOLDS", "tuned"]

#: ``gc.set_threshold`` while the monitor runs: young collections after 50,000 net
#: allocations of tracked objects (a backlog's chunk of 20,000 records holds about
#: 40,000), the older generations at CPython's default ratios.
GC_THRESHOLDS: Final = (50_000, 10, 10)


@contextmanager
def tuned() -> Iterator[None]:
    """The collector thresholds above for the ``with`` block, the process's own after."""
    thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
