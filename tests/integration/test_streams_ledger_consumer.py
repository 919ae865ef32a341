"""The ledger consumer against the real broker: manual commits, rebalances, history replay, lag."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any

import pytest

from streams.ledger_consumer import LedgerConsumer
from streams.records import InboundRecord, TopicPartition, next_offsets
from streams.settings import KafkaSettings
from tests.integration.partition_writer import produce_per_partition

pytestmark = pytest.mark.kafka

NewTopic = Callable[..., Awaitable[str]]
# Short timings so a second member's join is noticed quickly.
FAST_GROUP: dict[str, Any] = {"heartbeat_interval_ms": 200, "session_timeout_ms": 6000}


async def _produce(kafka: KafkaSettings, topic: str, per_partition: dict[int, int]) -> None:
    await produce_per_partition(kafka, topic, per_partition, key=b"acc")


async def _poll_at_least(
    ledger: LedgerConsumer, count: int, max_records: int = 1000
) -> list[InboundRecord]:
    got: list[InboundRecord] = []
    async with asyncio.timeout(20):
        while len(got) < count:
            got += await ledger.poll_batch(max_records, 200)
    return got


async def test_a_second_member_resumes_right_after_the_committed_offset(
    kafka: KafkaSettings, new_topic: NewTopic, unique_name: Callable[[], str]
) -> None:
    topic, group = await new_topic(partitions=1), unique_name()
    await _produce(kafka, topic, {0: 10})
    tp = TopicPartition(topic, 0)
    async with LedgerConsumer(kafka, topic=topic, group_id=group) as first:
        got = await _poll_at_least(first, 10)
        assert await first.commit(next_offsets(got[:4])) == {tp: 4}
    async with LedgerConsumer(kafka, topic=topic, group_id=group) as second:
        assert await second.committed([tp]) == {tp: 4}
        resumed = await _poll_at_least(second, 6)
    assert [r.offset for r in resumed] == [4, 5, 6, 7, 8, 9]


async def test_nothing_is_committed_unless_commit_is_called(
    kafka: KafkaSettings, new_topic: NewTopic, unique_name: Callable[[], str]
) -> None:
    topic, group = await new_topic(partitions=1), unique_name()
    await _produce(kafka, topic, {0: 3})
    async with LedgerConsumer(kafka, topic=topic, group_id=group) as first:
        await _poll_at_least(first, 3)
    async with LedgerConsumer(kafka, topic=topic, group_id=group) as second:
        again = await _poll_at_least(second, 3)
    assert [r.offset for r in again] == [0, 1, 2]


async def test_commit_leaves_out_partitions_the_member_does_not_hold(
    kafka: KafkaSettings, new_topic: NewTopic, unique_name: Callable[[], str]
) -> None:
    topic = await new_topic(partitions=1)
    await _produce(kafka, topic, {0: 2})
    async with LedgerConsumer(kafka, topic=topic, group_id=unique_name()) as ledger:
        await _poll_at_least(ledger, 2)
        held, foreign = TopicPartition(topic, 0), TopicPartition(topic, 7)
        assert await ledger.commit({held: 2, foreign: 1}) == {held: 2}
        assert await ledger.committed([held]) == {held: 2}


async def test_on_assigned_reports_every_partition_when_the_only_member_starts(
    kafka: KafkaSettings, new_topic: NewTopic, unique_name: Callable[[], str]
) -> None:
    topic = await new_topic(partitions=3)
    assigned: list[frozenset[TopicPartition]] = []

    async def on_assigned(partitions: frozenset[TopicPartition]) -> None:
        assigned.append(partitions)

    async with LedgerConsumer(
        kafka, topic=topic, group_id=unique_name(), on_assigned=on_assigned
    ) as ledger:
        everything = frozenset(TopicPartition(topic, p) for p in range(3))
        assert assigned == [everything]
        assert ledger.assignment() == everything


async def test_a_joining_member_takes_partitions_revoked_from_the_first(
    kafka: KafkaSettings, new_topic: NewTopic, unique_name: Callable[[], str]
) -> None:
    topic, group = await new_topic(partitions=4), unique_name()
    everything = frozenset(TopicPartition(topic, p) for p in range(4))
    first_events: list[tuple[str, frozenset[TopicPartition]]] = []
    rebalanced = asyncio.Event()

    async def first_revoked(partitions: frozenset[TopicPartition]) -> None:
        first_events.append(("revoked", partitions))

    async def first_assigned(partitions: frozenset[TopicPartition]) -> None:
        first_events.append(("assigned", partitions))
        if partitions != everything:
            rebalanced.set()

    async with (
        LedgerConsumer(
            kafka,
            topic=topic,
            group_id=group,
            on_assigned=first_assigned,
            on_revoked=first_revoked,
            **FAST_GROUP,
        ) as first,
        LedgerConsumer(kafka, topic=topic, group_id=group, **FAST_GROUP) as second,
    ):
        async with asyncio.timeout(30):
            await rebalanced.wait()
        assert first.assignment() | second.assignment() == everything
        assert not first.assignment() & second.assignment()
        assert len(first.assignment()) == 2
    assert ("revoked", everything) in first_events


async def test_a_failing_rebalance_callback_fails_start_instead_of_being_swallowed(
    kafka: KafkaSettings, new_topic: NewTopic, unique_name: Callable[[], str]
) -> None:
    topic = await new_topic(partitions=1)

    async def on_assigned(partitions: frozenset[TopicPartition]) -> None:
        raise RuntimeError("state rebuild failed")

    ledger = LedgerConsumer(kafka, topic=topic, group_id=unique_name(), on_assigned=on_assigned)
    with pytest.raises(RuntimeError, match="state rebuild failed"):
        await ledger.start()


async def test_read_history_replays_each_partition_up_to_its_bound_only(
    kafka: KafkaSettings, new_topic: NewTopic, unique_name: Callable[[], str]
) -> None:
    topic = await new_topic(partitions=3)
    await _produce(kafka, topic, {0: 8, 1: 5})
    tp0, tp1, tp2 = (TopicPartition(topic, p) for p in range(3))
    async with LedgerConsumer(kafka, topic=topic, group_id=unique_name()) as ledger:
        batches = []
        async with aclosing(ledger.read_history({tp0: 6, tp1: 50, tp2: 0}, max_records=2)) as it:
            async for batch in it:
                batches.append(batch)
    replayed = [(r.partition, r.offset) for batch in batches for r in batch]
    assert sorted(replayed) == [(0, i) for i in range(6)] + [(1, i) for i in range(5)]
    by_partition = [[o for p, o in replayed if p == partition] for partition in (0, 1)]
    assert all(offsets == sorted(offsets) for offsets in by_partition)


async def test_read_history_leaves_the_group_offsets_alone(
    kafka: KafkaSettings, new_topic: NewTopic, unique_name: Callable[[], str]
) -> None:
    topic, group = await new_topic(partitions=1), unique_name()
    await _produce(kafka, topic, {0: 4})
    tp = TopicPartition(topic, 0)
    async with LedgerConsumer(kafka, topic=topic, group_id=group) as ledger:
        await ledger.commit({tp: 2})
        async with aclosing(ledger.read_history(await ledger.committed([tp]))) as it:
            replayed = [r.offset async for batch in it for r in batch]
        assert replayed == [0, 1]
        assert await ledger.committed([tp]) == {tp: 2}
        assert [r.offset for r in await _poll_at_least(ledger, 2)] == [2, 3]


async def test_lag_counts_the_records_not_polled_yet(
    kafka: KafkaSettings, new_topic: NewTopic, unique_name: Callable[[], str]
) -> None:
    topic = await new_topic(partitions=1)
    await _produce(kafka, topic, {0: 10})
    async with LedgerConsumer(kafka, topic=topic, group_id=unique_name()) as ledger:
        got = await _poll_at_least(ledger, 3, max_records=3)
        assert await ledger.lag() == {TopicPartition(topic, 0): 10 - len(got)}


async def test_a_member_keeps_its_partitions_through_an_assignment_callback_longer_than_its_session(
    kafka: KafkaSettings, new_topic: NewTopic, unique_name: Callable[[], str]
) -> None:
    """A state rebuild inside on_assigned may outlast the session timeout (a million
    accounts); aiokafka stops heartbeating during the rebalance, so without heartbeats of
    our own the group drops the member and every commit after the rebuild fails."""
    topic = await new_topic(partitions=1)
    await _produce(kafka, topic, {0: 2})
    assignments: list[frozenset[TopicPartition]] = []
    session_s = FAST_GROUP["session_timeout_ms"] / 1000

    async def slow_rebuild(assigned: frozenset[TopicPartition]) -> None:
        assignments.append(assigned)
        await asyncio.sleep(1.5 * session_s)  # the work itself, not a synchronisation

    async with LedgerConsumer(
        kafka, topic=topic, group_id=unique_name(), on_assigned=slow_rebuild, **FAST_GROUP
    ) as ledger:
        got = await _poll_at_least(ledger, 2)
        tp = TopicPartition(topic, 0)
        assert await ledger.commit(next_offsets(got)) == {tp: 2}
    assert assignments == [frozenset({tp})]
