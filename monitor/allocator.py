"""Keep the C allocator from holding on to freed memory (glibc only).

glibc serves blocks from 128 KiB up with ``mmap`` and returns them when freed, but it
raises that threshold to the size of each large block freed (up to 32 MiB). After a
restore, whose decoding frees many 1-30 MiB temporaries, every later block of that
size comes from the heap, and freed heap memory stays resident: measured, a monitor
of 1M accounts / 3M positions held 1.16 GiB instead of 0.85 GiB
(tests/bench/bench_snapshot.py, ``memory``). Fixing the threshold keeps large blocks
on ``mmap``; setting ``MALLOC_MMAP_THRESHOLD_`` in the environment does the same.

Smaller blocks freed in the middle of the heap (a restore decodes hundreds of snapshot
chunks whose columns are tens of kilobytes each, freed once the book is loaded) stay
resident too, until ``malloc_trim`` hands their pages back: ``release_free_memory``,
once after a restore (about 0.2 GiB at 1M accounts).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any, Final

__all__ = ["MMAP_THRESHOLD_BYTES", "release_free_memory", "return_large_blocks"]

MMAP_THRESHOLD_BYTES: Final = 256 * 1024
_M_MMAP_THRESHOLD: Final = -3  # mallopt parameter number, <malloc.h>


def _libc_function(name: str) -> Any:
    """A function of the C library, or None (no C library found, or not glibc)."""
    library = ctypes.util.find_library("c")
    if library is None:
        return None
    try:
        return getattr(ctypes.CDLL(library), name)
    except (OSError, AttributeError):
        return None


def return_large_blocks(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Serve blocks of ``threshold`` bytes and more by ``mmap``, so freeing one returns it
    to the system; True if set (False where the C library is not glibc)."""
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))


def release_free_memory() -> bool:
    """Hand the pages of freed heap memory back to the system (``malloc_trim``); True if
    any were (False also where the C library is not glibc). Takes a few milliseconds."""
    trim = _libc_function("malloc_trim")
    if trim is None:
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))
