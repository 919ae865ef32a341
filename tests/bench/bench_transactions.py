"""Benchmark one cycle's Kafka transaction (run by ``make bench``; one JSON line).

The service commits every cycle in a transaction: its records, then the consumed ledger
offsets, then the commit. Back to back, each transaction's first request meets the
last one's markers still being written (CONCURRENT_TRANSACTIONS, KAFKA-5477) and is
retried after a back-off: ``streams.producer`` sets it to
``TRANSACTION_RETRY_BACKOFF_S`` (2 ms) instead of aiokafka's 20 ms.

* ``transaction_commit``: p50/p90/mean milliseconds of one transaction of ``--records``
  records (200 bytes) over 3 partitions plus offsets of 3 ledger partitions, through
  :class:`streams.Producer` as the service sends them, ``--transactions`` back to back.
  Baseline, in the same run on the same topic: the same with aiokafka's back-off. With
  it about half the transactions wait the 20 ms (the p50 may be either), so the ratios
  are of the mean and the p90.
* ``crash_publish``: one transaction of ``--crash-events`` records of 700 bytes (an event
  with a few positions), each keyed by its own account, over 6 partitions, through
  :class:`streams.Producer` with the monitor's producer settings (``linger_ms`` 0,
  ``monitor.clients.PRODUCER_BATCH_BYTES``): what publishing a crash's events costs.
  Baseline, same run and topic: the same records sent as the producer sent them before
  the fifteenth stop (aiokafka picking each key's partition, every record's future
  gathered, aiokafka's 16 KiB batches). Best of ``--crash-rounds`` each, alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import aiokafka.producer.sender

from monitor.clients import PRODUCER_BATCH_BYTES
from monitor.config import load_settings
from streams import OutboundRecord, Producer, TopicPartition
from streams.producer import TRANSACTION_RETRY_BACKOFF_S
from streams.topics import TopicSpec, create_topics, delete_topics

_AIOKAFKA_BACKOFF_S = 0.02  # aiokafka's own BACKOFF_OVERRIDE


async def transactions(producer: Producer, topic: str, records: int, count: int) -> list[float]:
    """Seconds of each of ``count`` transactions (the first few, warming up, dropped)."""
    batch = [OutboundRecord(topic, f"k{k}".encode(), b"x" * 200) for k in range(records)]
    offsets = {TopicPartition(f"{topic}-ledger", p): 1 for p in range(3)}
    group = f"{topic}-group"
    seconds = []
    for _ in range(count + 5):
        started = time.perf_counter()
        async with producer.transaction():
            await producer.send_batch(batch)
            await producer.send_offsets_to_transaction(offsets, group)
        seconds.append(time.perf_counter() - started)
    return seconds[5:]


async def run(args: argparse.Namespace) -> None:
    kafka = load_settings(environ=os.environ).kafka
    topic = f"bench-txn-{uuid.uuid4().hex[:8]}"
    specs = [
        TopicSpec(name=name, partitions=3, replication_factor=1, configs={})
        for name in (topic, f"{topic}-ledger")
    ]
    await create_topics(kafka, specs)
    producer = Producer(kafka, transactional_id=topic, linger_ms=0)
    await producer.start()
    figures: dict[float, list[float]] = {TRANSACTION_RETRY_BACKOFF_S: [], _AIOKAFKA_BACKOFF_S: []}
    try:
        for _ in range(args.rounds):  # alternating, so both see the same box
            for backoff, found in figures.items():
                aiokafka.producer.sender.BACKOFF_OVERRIDE = backoff
                found.extend(await transactions(producer, topic, args.records, args.transactions))
    finally:
        aiokafka.producer.sender.BACKOFF_OVERRIDE = TRANSACTION_RETRY_BACKOFF_S
        await producer.stop()
        await delete_topics(kafka, [spec.name for spec in specs])

    def summary(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {
            "p50_ms": round(1e3 * ordered[len(ordered) // 2], 2),
            "p90_ms": round(1e3 * ordered[int(len(ordered) * 0.9)], 2),
            "mean_ms": round(1e3 * statistics.fmean(ordered), 2),
        }

    ours, theirs = (
        summary(figures[TRANSACTION_RETRY_BACKOFF_S]),
        summary(figures[_AIOKAFKA_BACKOFF_S]),
    )
    print(
        json.dumps(
            {
                "bench": "transaction_commit",
                "records": args.records,
                "transactions": len(figures[TRANSACTION_RETRY_BACKOFF_S]),
                "retry_backoff_s": TRANSACTION_RETRY_BACKOFF_S,
                **ours,
                "baseline": "the same transactions with aiokafka's back-off "
                f"({_AIOKAFKA_BACKOFF_S} s)",
                **{f"baseline_{k}": v for k, v in theirs.items()},
                "ratio_mean": round(ours["mean_ms"] / theirs["mean_ms"], 3),
                "ratio_p90": round(ours["p90_ms"] / theirs["p90_ms"], 3),
            }
        ),
        flush=True,
    )


async def crash_publish(args: argparse.Namespace) -> None:
    kafka = load_settings(environ=os.environ).kafka
    topic = f"bench-crash-{uuid.uuid4().hex[:8]}"
    await create_topics(
        kafka, [TopicSpec(name=topic, partitions=6, replication_factor=1, configs={})]
    )
    value = b"x" * 700
    batch = [OutboundRecord(topic, f"acct{k}".encode(), value) for k in range(args.crash_events)]
    ours = Producer(
        kafka, transactional_id=f"{topic}-ours", linger_ms=0, max_batch_size=PRODUCER_BATCH_BYTES
    )
    before = Producer(kafka, transactional_id=f"{topic}-before", linger_ms=0)
    await ours.start()
    await before.start()

    async def as_before() -> None:  # aiokafka's partitioner, every future gathered
        producer = before._started()
        pending = [
            await producer.send(r.topic, value=r.value, key=r.key, headers=list(r.headers))
            for r in batch
        ]
        await asyncio.gather(*pending)

    seconds: dict[str, list[float]] = {"ours": [], "before": []}
    try:
        sends: tuple[tuple[str, Producer, Callable[[], Awaitable[object]]], ...] = (
            ("ours", ours, lambda: ours.send_batch(batch)),
            ("before", before, as_before),
        )
        for _ in range(args.crash_rounds):
            for name, producer, send in sends:
                started = time.perf_counter()
                async with producer.transaction():
                    await send()
                seconds[name].append(time.perf_counter() - started)
    finally:
        await ours.stop()
        await before.stop()
        await delete_topics(kafka, [topic])
    best, baseline = min(seconds["ours"]), min(seconds["before"])
    print(
        json.dumps(
            {
                "bench": "crash_publish",
                "records": len(batch),
                "record_bytes": len(value),
                "partitions": 6,
                "seconds": round(best, 3),
                "seconds_rounds": [round(x, 3) for x in seconds["ours"]],
                "baseline": "the same transaction sent as before the fifteenth stop "
                "(aiokafka's partitioner, gathered futures, 16 KiB batches)",
                "baseline_seconds": round(baseline, 3),
                "baseline_seconds_rounds": [round(x, 3) for x in seconds["before"]],
                "ratio": round(best / baseline, 3),
            }
        ),
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20, help="records per transaction")
    parser.add_argument("--transactions", type=int, default=100, help="per round and back-off")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, back-offs alternating")
    parser.add_argument(
        "--crash-events", type=int, default=100_000, help="records of the crash transaction"
    )
    parser.add_argument("--crash-rounds", type=int, default=3, help="crash transactions each way")
    args = parser.parse_args()
    print(f"# {args.rounds} rounds of {args.transactions} transactions each way", file=sys.stderr)
    asyncio.run(run(args))
    print(f"# {args.crash_rounds} crash transactions of {args.crash_events:,} records each way",
          file=sys.stderr)  # fmt: skip
    asyncio.run(crash_publish(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
