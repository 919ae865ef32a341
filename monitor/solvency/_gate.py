"""The stress steps aside while a cycle judges ticks: :class:`CycleGate`.

A stress in a worker thread shares the machine with the event loop's cycles: its kernels
hold no GIL, but they stream 100 MB arrays through the caches and memory bus a tick to
hundreds of thousands of holders also needs, and on a busy host they take a core. So the
loop closes the gate while a cycle computes (:meth:`CycleGate.cycle`) and the stress's
kernels, which look at the gate's flag every few thousand rows, return where they are;
the worker sleeps until the gate opens and resumes them there. A tick then never runs
beside the stress for more than one slice of rows (microseconds). A gate left closed
(a cycle that raised) is opened by the worker after ``max_wait_s``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.compiled import compiled

__all__ = ["OPEN", "SLICE", "CycleGate", "jit", "resume"]

SLICE = 4095  # rows between two looks at the gate: (r & SLICE) == 0


class CycleGate:
    """Closed while a cycle computes; the stress's kernels pause at a closed gate.

    Closings nest (a cycle, and the decoding of price records polled while it awaits its
    commit): the gate opens when the outermost ends."""

    def __init__(self, max_wait_s: float = 5.0) -> None:
        #: Read by the kernels without the GIL: 1 while a cycle computes.
        self.flag: NDArray[np.int8] = np.zeros(1, dtype=np.int8)
        self._open = threading.Event()
        self._open.set()
        self._max_wait_s = max_wait_s
        self._depth = 0  # closings not yet ended (the event loop's thread only)
        self.pauses = 0  # how often the stress stepped aside (for tests and metrics)

    def close(self) -> None:
        """A cycle starts: the stress pauses at its next check."""
        self._depth += 1
        self._open.clear()
        self.flag[0] = 1

    def open(self) -> None:
        """The cycle's computing is done: the stress resumes (once no closing is left)."""
        self._depth = max(0, self._depth - 1)
        if self._depth == 0:
            self.flag[0] = 0
            self._open.set()

    @contextmanager
    def cycle(self) -> Iterator[None]:
        """Closed for the ``with`` block."""
        self.close()
        try:
            yield
        finally:
            self.open()

    def step_aside(self) -> None:
        """Between two pieces of numpy work in the worker: wait while the gate is closed."""
        if self.flag[0]:
            self.wait()

    def wait(self) -> None:
        """Called by the worker when a kernel paused: sleep until the gate opens."""
        self.pauses += 1
        if not self._open.wait(self._max_wait_s):
            # No cycle lasts that long: the gate was left closed (a cycle that raised).
            self._depth = 0
            self.flag[0] = 0
            self._open.set()


OPEN = CycleGate()  # never closed: the stress runs through (what-if commands, tests)


def jit(function: Any) -> Any:
    """How the stress's kernels are compiled (a decorator): ``monitor.compiled`` with
    numpy's float semantics (a division by zero is inf or NaN, as in the numpy
    references); the function itself without numba."""
    kernel = compiled(function, numpy_errors=True)
    return function if kernel is None else kernel


def resume(kernel: Any, gate: CycleGate, *args: Any) -> None:
    """Run a resumable kernel to its end, sleeping while ``gate`` is closed.

    A resumable kernel takes the gate's flag and a ``progress`` array (phase, index),
    returns False where it paused (progress saved) and True when it is done."""
    progress = np.zeros(2, dtype=np.int64)
    while not kernel(gate.flag, progress, *args):
        gate.wait()
