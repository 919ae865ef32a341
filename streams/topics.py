"""liqmon's topics: what they must look like, creating them, and checking a cluster.

`topic_specs` turns `TopicSettings` into the exact topics DESIGN.md calls for (partitions,
replication, cleanup policy). `ensure_topics` creates the missing ones (idempotent; safe
when several instances start at once) and waits until every partition has a leader;
`check_topics` only compares. Both report differences instead of changing existing topics:
adding partitions to a keyed topic would move accounts between partitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import msgspec

from streams.errors import StreamsError
from streams.settings import KafkaSettings, TopicSettings, client_kwargs

__all__ = [
    "TopicProblem",
    "TopicSpec",
    "TopicsReport",
    "check_topics",
    "create_topics",
    "delete_topics",
    "ensure_topics",
    "strimzi_topics",
    "topic_specs",
]

_TOPIC_ALREADY_EXISTS = 36
_UNKNOWN_TOPIC = 3


class TopicSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One topic as liqmon needs it."""

    name: str
    partitions: int
    replication_factor: int
    #: Topic-level configs liqmon sets and checks (others stay at the broker's defaults).
    configs: dict[str, str]


class TopicProblem(msgspec.Struct, frozen=True, kw_only=True):
    """How an existing topic differs from its spec."""

    topic: str
    problem: str

    def describe(self) -> str:
        return f"topic {self.topic}: {self.problem}"


class TopicsReport(msgspec.Struct, frozen=True, kw_only=True):
    """What `ensure_topics` created and what differs from the specs on the cluster."""

    created: tuple[str, ...] = ()
    existing: tuple[str, ...] = ()
    problems: tuple[TopicProblem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def topic_specs(topics: TopicSettings) -> list[TopicSpec]:
    """The five topics of DESIGN.md ("Data flow") under the names in `topics`."""
    compact = {"cleanup.policy": "compact"}
    delete = {"cleanup.policy": "delete"}
    by_account = topics.fills_partitions
    return [
        _spec(topics, topics.prices, topics.prices_partitions, compact),
        _spec(topics, topics.fills, by_account, delete),
        _spec(topics, topics.margin_events, by_account, delete),
        _spec(topics, topics.state, by_account, compact),
        _spec(topics, topics.dlq, 1, delete),
    ]


def strimzi_topics(specs: Sequence[TopicSpec], cluster: str) -> list[dict[str, Any]]:
    """Strimzi ``KafkaTopic`` resources (kafka.strimzi.io/v1beta2) for ``specs``.

    The Topic Operator of the Kafka cluster named ``cluster`` then creates and checks the
    topics as ``liqmon topics create`` would. Resource names must be DNS labels, so the real
    topic name goes in ``spec.topicName``.
    """
    return [
        {
            "apiVersion": "kafka.strimzi.io/v1beta2",
            "kind": "KafkaTopic",
            "metadata": {
                "name": _resource_name(spec.name),
                "labels": {"strimzi.io/cluster": cluster},
            },
            "spec": {
                "topicName": spec.name,
                "partitions": spec.partitions,
                "replicas": spec.replication_factor,
                "config": dict(spec.configs),
            },
        }
        for spec in specs
    ]


def _resource_name(topic: str) -> str:
    """A Kubernetes resource name for ``topic`` (lower case, `.` and `_` become `-`)."""
    return "".join(ch if ch.isalnum() or ch == "-" else "-" for ch in topic.lower()).strip("-")


def _spec(topics: TopicSettings, name: str, partitions: int, configs: dict[str, str]) -> TopicSpec:
    return TopicSpec(
        name=name,
        partitions=partitions,
        replication_factor=topics.replication_factor,
        configs=configs,
    )


async def ensure_topics(
    kafka: KafkaSettings, topics: TopicSettings, *, timeout_s: float = 30.0
) -> TopicsReport:
    """Create the missing topics, wait until they have leaders, and report any differences."""
    specs = topic_specs(topics)
    async with _admin(kafka) as admin:
        created = await _create_missing(admin, specs, timeout_s)
        problems = await _problems(admin, specs)
    return TopicsReport(
        created=created,
        existing=tuple(spec.name for spec in specs if spec.name not in created),
        problems=tuple(problems),
    )


async def create_topics(
    kafka: KafkaSettings, specs: Sequence[TopicSpec], *, timeout_s: float = 30.0
) -> tuple[str, ...]:
    """Create those of `specs` that do not exist yet, wait for their leaders; names created."""
    async with _admin(kafka) as admin:
        return await _create_missing(admin, specs, timeout_s)


async def check_topics(kafka: KafkaSettings, topics: TopicSettings) -> TopicsReport:
    """Compare the cluster's topics with `topic_specs(topics)`; changes nothing."""
    specs = topic_specs(topics)
    async with _admin(kafka) as admin:
        existing = await _existing(admin, specs)
        problems = await _problems(admin, specs)
    return TopicsReport(
        existing=tuple(spec.name for spec in specs if spec.name in existing),
        problems=tuple(problems),
    )


async def delete_topics(kafka: KafkaSettings, names: Iterable[str]) -> None:
    """Delete topics (tests clean up their prefixed topics with this)."""
    async with _admin(kafka) as admin:
        await admin.delete_topics(list(names))


# -- internals -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _admin(kafka: KafkaSettings) -> AsyncIterator[Any]:
    """A started aiokafka admin client (one-line error if Kafka is unreachable)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaConnectionError

    admin = AIOKafkaAdminClient(**client_kwargs(kafka))
    try:
        try:
            await admin.start()
        except KafkaConnectionError:
            raise StreamsError(
                f"cannot reach Kafka at {kafka.bootstrap_servers}: is it running? "
                "(`liqmon kafka start` runs a local one; kafka.bootstrap_servers sets where)"
            ) from None
        yield admin
    finally:
        await admin.close()


async def _create_missing(
    admin: Any, specs: Sequence[TopicSpec], timeout_s: float
) -> tuple[str, ...]:
    from aiokafka.admin import NewTopic

    existing = await _existing(admin, specs)
    missing = [spec for spec in specs if spec.name not in existing]
    created: list[str] = []
    if missing:
        response = await admin.create_topics(
            [
                NewTopic(
                    spec.name, spec.partitions, spec.replication_factor, topic_configs=spec.configs
                )
                for spec in missing
            ]
        )
        for topic, code, message in response.topic_errors:
            if code == 0:
                created.append(topic)
            elif code != _TOPIC_ALREADY_EXISTS:
                raise StreamsError(f"cannot create topic {topic}: {message} (error {code})")
    await _await_leaders(admin, [spec.name for spec in specs], timeout_s)
    return tuple(created)


async def _describe(admin: Any, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Metadata of those `names` that exist."""
    described = await admin.describe_topics(list(names))
    return {entry["topic"]: entry for entry in described if entry["error_code"] != _UNKNOWN_TOPIC}


async def _existing(admin: Any, specs: Sequence[TopicSpec]) -> set[str]:
    return set(await _describe(admin, [spec.name for spec in specs]))


async def _await_leaders(admin: Any, names: Sequence[str], timeout_s: float) -> None:
    """Wait until every partition of `names` has a leader, so clients can use them at once."""
    deadline = time.monotonic() + timeout_s
    while True:
        described = await _describe(admin, names)
        pending = [
            name
            for name in names
            if name not in described
            or not described[name]["partitions"]
            or any(p["leader"] < 0 for p in described[name]["partitions"])
        ]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise StreamsError(
                f"topics {', '.join(pending)} have no partition leaders after {timeout_s:.0f}s"
            )
        await asyncio.sleep(0.1)


async def _problems(admin: Any, specs: Sequence[TopicSpec]) -> list[TopicProblem]:
    described = await _describe(admin, [spec.name for spec in specs])
    configs = await _configs(admin, [spec.name for spec in specs if spec.name in described])
    problems = []
    for spec in specs:
        if spec.name not in described:
            problems.append(TopicProblem(topic=spec.name, problem="missing"))
            continue
        partitions = described[spec.name]["partitions"]
        if len(partitions) != spec.partitions:
            problems.append(
                TopicProblem(
                    topic=spec.name,
                    problem=f"has {len(partitions)} partitions, expected {spec.partitions}",
                )
            )
        replicas = min(len(p["replicas"]) for p in partitions) if partitions else 0
        if replicas != spec.replication_factor:
            problems.append(
                TopicProblem(
                    topic=spec.name,
                    problem=f"has replication factor {replicas}, "
                    f"expected {spec.replication_factor}",
                )
            )
        actual = configs.get(spec.name, {})
        for key, expected in spec.configs.items():
            if actual.get(key) != expected:
                problems.append(
                    TopicProblem(
                        topic=spec.name,
                        problem=f"has {key}={actual.get(key)}, expected {key}={expected}",
                    )
                )
    return problems


async def _configs(admin: Any, names: Sequence[str]) -> dict[str, dict[str, str]]:
    """Effective topic configs by topic name."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    if not names:
        return {}
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    )
    found: dict[str, dict[str, str]] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            if resource["error_code"]:
                raise StreamsError(
                    f"cannot read configs of topic {resource['resource_name']}: "
                    f"{resource['error_message']}"
                )
            found[resource["resource_name"]] = {
                entry["config_names"]: entry["config_value"] for entry in resource["config_entries"]
            }
    return found
