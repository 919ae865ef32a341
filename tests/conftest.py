"""Fixtures shared by every test folder, chiefly access to the real Kafka broker.

`make test` starts the local broker first; when pytest runs on its own, the first test that
needs Kafka starts it (and leaves it running, like `make test` does). Where the broker is
comes from the same place as for liqmon itself: ``LIQMON_KAFKA__BOOTSTRAP_SERVERS``
(default 127.0.0.1:9092). Each test gets its own topic names, so tests never see each
other's records.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from monitor.config import load_settings
from streams import _lean as lean
from streams._probe import accepts_requests
from streams.broker import LocalBroker, find_project_root
from streams.errors import StreamsError
from streams.settings import KafkaSettings, TopicSettings
from streams.topics import TopicSpec, create_topics, delete_topics, ensure_topics

_LOCAL_HOSTS = {"127.0.0.1", "localhost"}

# CI explores the same examples on every run (hypothesis's own advice for CI): a property
# that fails there fails on every run, never by the luck of a seed. Locally each run
# explores new examples and keeps what failed in .hypothesis/.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")
_FOLDER_MARKERS = {"unit": "unit", "integration": "kafka"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by folder: tests/unit -> `unit`, tests/integration -> `kafka`."""
    for item in items:
        marker = _FOLDER_MARKERS.get(Path(item.path).parent.name)
        if marker is not None:
            item.add_marker(marker)


@pytest.fixture
def lean_records_as_found() -> Iterator[None]:
    """The test may switch lean records on or off (``streams._lean``, process-wide):
    they are as the test found them afterwards."""
    before = lean.installed()
    yield
    if before:
        lean.install()
    else:
        lean.uninstall()


@pytest.fixture(scope="session")
def project_root() -> Path:
    return find_project_root(Path(__file__).parent)


@pytest.fixture(scope="session")
def kafka_broker(project_root: Path) -> str:
    """Bootstrap address of a broker that answers requests; starts the local one if needed."""
    kafka = load_settings(environ=os.environ).kafka
    host, _, port = kafka.bootstrap_servers.split(",")[0].strip().rpartition(":")
    if host in _LOCAL_HOSTS:
        try:
            LocalBroker(project_root, port=int(port)).start(timeout_s=120)
        except StreamsError as exc:
            pytest.fail(f"cannot start the local Kafka broker: {exc}", pytrace=False)
    elif not accepts_requests(host, int(port)):
        pytest.fail(f"Kafka at {kafka.bootstrap_servers} does not answer", pytrace=False)
    return kafka.bootstrap_servers


@pytest.fixture(scope="session")
def kafka_settings(kafka_broker: str) -> KafkaSettings:
    """Settings every test client connects with (the running broker's address)."""
    return load_settings(environ=os.environ).kafka


@pytest.fixture(scope="session")
def kafka(kafka_settings: KafkaSettings) -> KafkaSettings:
    """Short name for `kafka_settings`."""
    return kafka_settings


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[], str]:
    """Fresh names for topics, groups and transactional ids, traceable to the test."""
    stem = request.node.name.removeprefix("test_")[:40].strip("_").replace("[", "-")
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in stem)

    def make() -> str:
        return f"t-{stem}-{uuid.uuid4().hex[:10]}"

    return make


@pytest.fixture
async def new_topic(
    kafka_settings: KafkaSettings, unique_name: Callable[[], str]
) -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """``await new_topic(partitions=3, compact=False)`` -> name of a fresh topic, deleted after.

    Returns once every partition has a leader, so the test can produce at once.
    """
    created: list[str] = []

    async def make(partitions: int = 1, *, compact: bool = False) -> str:
        spec = TopicSpec(
            name=unique_name(),
            partitions=partitions,
            replication_factor=1,
            configs={"cleanup.policy": "compact" if compact else "delete"},
        )
        created.extend(await create_topics(kafka_settings, [spec]))
        return spec.name

    yield make
    if created:
        await delete_topics(kafka_settings, created)


@pytest.fixture
async def topics(
    kafka_settings: KafkaSettings, unique_name: Callable[[], str]
) -> AsyncIterator[TopicSettings]:
    """liqmon's topics under a unique prefix, created on the broker, deleted after."""
    settings = TopicSettings(fills_partitions=3).prefixed(unique_name() + "-")
    report = await ensure_topics(kafka_settings, settings)
    assert report.ok, [problem.describe() for problem in report.problems]
    yield settings
    await delete_topics(kafka_settings, settings.names())
