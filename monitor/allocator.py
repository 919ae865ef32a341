"""Keep the C allocator from holding on to freed memory (glibc only).

glibc serves blocks from 128 KiB up with ``mmap`` and returns them when freed, but it
raises that threshold to the size of each large block freed (up to 32 MiB). After a
restore, whose decoding frees many 1-30 MiB temporaries, every later block of that
size comes from the heap, and freed heap memory stays resident: measured, a monitor
of 1M accounts / 3M positions held 1.16 GiB instead of 0.85 GiB
(tests/bench/bench_snapshot.py, ``memory``). Fixing the threshold keeps large blocks
on ``mmap``; setting ``MALLOC_MMAP_THRESHOLD_`` in the environment does the same.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Final

__all__ = ["MMAP_THRESHOLD_BYTES", "return_large_blocks"]

MMAP_THRESHOLD_BYTES: Final = 256 * 1024
_M_MMAP_THRESHOLD: Final = -3  # mallopt parameter number, <malloc.h>


def return_large_blocks(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Serve blocks of ``threshold`` bytes and more by ``mmap``, so freeing one returns it
    to the system; True if set (False where the C library is not glibc)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))
