"""Creating and checking liqmon's topics on the real broker."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from monitor.cli import main
from streams.errors import StreamsError
from streams.settings import KafkaSettings, TopicSettings
from streams.topics import check_topics, delete_topics, ensure_topics

pytestmark = pytest.mark.kafka

NewTopic = Callable[..., Awaitable[str]]


async def test_ensure_topics_creates_all_of_them_as_the_design_says(
    kafka_settings: KafkaSettings, unique_name: Callable[[], str]
) -> None:
    topics = TopicSettings(fills_partitions=4).prefixed(unique_name() + "-")
    try:
        report = await ensure_topics(kafka_settings, topics)
        assert sorted(report.created) == sorted(topics.names())
        assert report.problems == ()
        assert (await check_topics(kafka_settings, topics)).ok
    finally:
        await delete_topics(kafka_settings, topics.names())


async def test_ensure_topics_again_creates_nothing(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    report = await ensure_topics(kafka_settings, topics)
    assert report.created == ()
    assert report.existing == tuple(topics.names())
    assert report.ok


async def test_check_reports_every_missing_topic(
    kafka_settings: KafkaSettings, unique_name: Callable[[], str]
) -> None:
    topics = TopicSettings().prefixed(unique_name() + "-")
    report = await check_topics(kafka_settings, topics)
    assert [p.describe() for p in report.problems] == [
        f"topic {name}: missing" for name in topics.names()
    ]


async def test_check_reports_a_wrong_partition_count(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    expected = TopicSettings(
        prices=topics.prices,
        fills=topics.fills,
        margin_events=topics.margin_events,
        state=topics.state,
        dlq=topics.dlq,
        solvency=topics.solvency,
        fills_partitions=topics.fills_partitions + 1,
    )
    report = await check_topics(kafka_settings, expected)
    n, m = topics.fills_partitions, expected.fills_partitions
    assert [p.describe() for p in report.problems] == [
        f"topic {topics.fills}: has {n} partitions, expected {m}",
        f"topic {topics.margin_events}: has {n} partitions, expected {m}",
        f"topic {topics.state}: has {n} partitions, expected {m}",
    ]


async def test_check_reports_a_wrong_cleanup_policy(
    kafka_settings: KafkaSettings, topics: TopicSettings, new_topic: NewTopic
) -> None:
    plain = await new_topic(partitions=1, compact=False)
    report = await check_topics(
        kafka_settings,
        TopicSettings(
            prices=plain,
            fills=topics.fills,
            margin_events=topics.margin_events,
            state=topics.state,
            dlq=topics.dlq,
            solvency=topics.solvency,
            fills_partitions=topics.fills_partitions,
        ),
    )
    assert [p.describe() for p in report.problems] == [
        f"topic {plain}: has cleanup.policy=delete, expected cleanup.policy=compact"
    ]


async def test_an_unreachable_cluster_is_one_clear_error(unique_name: Callable[[], str]) -> None:
    nowhere = KafkaSettings(bootstrap_servers="127.0.0.1:1", request_timeout_ms=2000)
    with pytest.raises(StreamsError, match=r"^cannot reach Kafka at 127.0.0.1:1: is it running"):
        await check_topics(nowhere, TopicSettings())


def test_topics_commands_create_then_check_clean(
    kafka_settings: KafkaSettings,
    unique_name: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topics = TopicSettings(fills_partitions=2).prefixed(unique_name() + "-")
    monkeypatch.setenv("LIQMON_KAFKA__BOOTSTRAP_SERVERS", kafka_settings.bootstrap_servers)
    monkeypatch.setenv("LIQMON_TOPICS__FILLS_PARTITIONS", "2")
    for field, name in zip(
        ("PRICES", "FILLS", "MARGIN_EVENTS", "STATE", "DLQ", "SOLVENCY"),
        topics.names(),
        strict=True,
    ):
        monkeypatch.setenv(f"LIQMON_TOPICS__{field}", name)
    try:
        assert main(["topics", "create"]) == 0
        created = capsys.readouterr().out
        assert main(["topics", "check"]) == 0
        checked = capsys.readouterr().out
    finally:
        asyncio.run(delete_topics(kafka_settings, topics.names()))
    assert f"topic {topics.prices}: created (1 partition, cleanup.policy=compact)" in created
    assert f"topic {topics.fills}: ok (2 partitions, cleanup.policy=delete)" in checked


def test_topics_check_exits_1_and_lists_what_differs(
    kafka_settings: KafkaSettings,
    unique_name: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = unique_name() + "-"
    monkeypatch.setenv("LIQMON_KAFKA__BOOTSTRAP_SERVERS", kafka_settings.bootstrap_servers)
    monkeypatch.setenv("LIQMON_TOPICS__PRICES", prefix + "prices")
    assert main(["topics", "check"]) == 1
    out = capsys.readouterr().out
    assert f"topic {prefix}prices: missing" in out
    summary = out.splitlines()[-1]
    assert summary.endswith(f"differ from the settings on {kafka_settings.bootstrap_servers}")
