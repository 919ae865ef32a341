"""Compiled kernels: the one place that imports numba.

Each numeric kernel of the pure core (engine, models, scenarios, solvency) is a plain
Python function over arrays and numbers, with a readable numpy reference beside it that a
test checks it against. :func:`compiled` turns it into machine code that is cached on disk
(``cache=True``: a restart loads it instead of compiling) and runs without the GIL
(``nogil=True``: a kernel in a worker thread never blocks the event loop). numba is a
dependency; without it ``HAVE_NUMBA`` is false, :func:`compiled` returns None and the
callers run their references.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HAVE_NUMBA", "compiled"]

try:  # numba is optional at import time: the numpy references always work
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency; this is the fallback
    HAVE_NUMBA = False
else:
    HAVE_NUMBA = True


def compiled(function: Any, *, numpy_errors: bool = False, inline: bool = False) -> Any:
    """``function`` compiled by numba, or None without it.

    ``numpy_errors``: numpy's float semantics (a division by zero gives inf or NaN, as in
    the numpy references) instead of a check and an exception per division. ``inline``:
    a per-element helper that numba inlines into the kernels calling it.
    """
    if not HAVE_NUMBA:
        return None
    options: dict[str, Any] = {"cache": True, "nogil": True}
    if numpy_errors:
        options["error_model"] = "numpy"
    if inline:
        options["inline"] = "always"
    return njit(**options)(function)
