"""Kafka's default partition of keyed records, for many keys at once.

A record with a key goes to partition ``toPositive(murmur2(key)) % partitions``
(``org.apache.kafka.common.utils.Utils.murmur2``, the Java client's default
partitioner, which aiokafka's follows): every client puts a key in the same partition,
so a consumer of one account's events reads them in order whoever produced them.
aiokafka hashes one key per ``send`` in Python, about 4 us a key: a third of the cost of
publishing a crash's hundred thousand events. :func:`key_partitions` hashes them all
with numpy, keys of one length at a time (a key's bytes a row of a matrix, the hash's
32-bit arithmetic column by column). ``tests/unit/test_partitioning.py`` checks it
against Kafka's published vectors and aiokafka's hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = ["key_partitions", "murmur2"]

_SEED: Final = 0x9747B28C
_M: Final = np.uint32(0x5BD1E995)

U32 = NDArray[np.uint32]


def murmur2(rows: NDArray[np.uint8]) -> U32:
    """Kafka's murmur2 of each row of ``rows`` (keys of one length), as unsigned 32 bits."""
    count, length = rows.shape
    h: U32 = np.full(count, (_SEED ^ length) & 0xFFFFFFFF, dtype=np.uint32)
    for at in range(0, length - length % 4, 4):
        k = rows[:, at].astype(np.uint32)
        k |= rows[:, at + 1].astype(np.uint32) << 8
        k |= rows[:, at + 2].astype(np.uint32) << 16
        k |= rows[:, at + 3].astype(np.uint32) << 24
        k *= _M
        k ^= k >> 24
        k *= _M
        h *= _M
        h ^= k
    tail, extra = length & ~3, length % 4
    if extra >= 3:
        h ^= rows[:, tail + 2].astype(np.uint32) << 16
    if extra >= 2:
        h ^= rows[:, tail + 1].astype(np.uint32) << 8
    if extra >= 1:
        h ^= rows[:, tail].astype(np.uint32)
        h *= _M
    h ^= h >> 13
    h *= _M
    h ^= h >> 15
    return h


def key_partitions(keys: Sequence[bytes], partitions: int) -> list[int]:
    """The partition of each key among ``partitions`` (numbered from 0), as Kafka's
    default partitioner picks it."""
    if partitions <= 0:
        raise ValueError(f"a topic has at least one partition, not {partitions}")
    n = len(keys)
    lengths = np.fromiter(map(len, keys), np.int64, n)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    packed = np.frombuffer(b"".join(keys), dtype=np.uint8)
    out = np.empty(n, dtype=np.int64)
    for length in np.unique(lengths).tolist():
        which = np.flatnonzero(lengths == length)
        rows = packed[starts[which, None] + np.arange(length)]
        out[which] = (murmur2(rows) & 0x7FFFFFFF) % partitions
    result: list[int] = out.tolist()
    return result
