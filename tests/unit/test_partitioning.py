"""Kafka's default partition of keyed records (``streams.partitioning``): Kafka's own
murmur2 test vectors, and aiokafka's independent per-key hash over random keys of every
length, non-ASCII bytes included."""

from __future__ import annotations

import numpy as np
import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from streams.partitioning import key_partitions, murmur2

pytestmark = pytest.mark.unit

# org.apache.kafka.common.utils.UtilsTest#testMurmur2: the Java client's hashes, as ints.
KAFKA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "want"), list(KAFKA_VECTORS.items()))
def test_murmur2_gives_the_java_clients_hash(key: bytes, want: int) -> None:
    rows = np.frombuffer(key, dtype=np.uint8)[None, :]
    got = int(murmur2(rows)[0])
    assert (got - (1 << 32) if got >= 1 << 31 else got) == want


def test_every_key_lands_where_aiokafkas_partitioner_puts_it() -> None:
    rng = np.random.default_rng(5)
    keys = [
        rng.integers(0, 256, int(n), dtype=np.uint8).tobytes() for n in rng.integers(0, 41, 3000)
    ]
    keys += ["açcount-é".encode(), b"", b"acct1", b"acct1"]  # repeats, empty, UTF-8
    for partitions in (1, 3, 7, 64):
        everyone = list(range(partitions))
        want = [DefaultPartitioner()(key, everyone, everyone) for key in keys]
        assert key_partitions(keys, partitions) == want
    assert [int(murmur2(np.frombuffer(k, np.uint8)[None, :])[0]) for k in keys[:50]] == [
        aiokafka_murmur2(k) & 0xFFFFFFFF for k in keys[:50]
    ]


def test_no_keys_and_no_partitions() -> None:
    assert key_partitions([], 3) == []
    with pytest.raises(ValueError, match="at least one partition"):
        key_partitions([b"a"], 0)
