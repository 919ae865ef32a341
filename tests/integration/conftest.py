"""Fixtures of the service tests: a harness that runs monitors against unique topics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from streams.settings import KafkaSettings, TopicSettings
from tests.integration.monitor_harness import MonitorHarness


@pytest.fixture
async def harness(
    kafka_settings: KafkaSettings, topics: TopicSettings, unique_name: Callable[[], str]
) -> AsyncIterator[MonitorHarness]:
    """Inputs, monitors and outputs on this test's own topics and consumer group."""
    async with MonitorHarness(kafka_settings, topics, unique_name()) as h:
        yield h
