"""`liqmon topics create|check|strimzi`: make, verify or describe the topics DESIGN.md names.

Names, partition counts and the cluster come from the settings (`--config`, LIQMON_*).
`strimzi` prints the same topics as Strimzi KafkaTopic resources for Kubernetes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from monitor.config import add_config_option, settings_from_args
from monitor.log import configure_logging

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "topics",
        help="create or check liqmon's Kafka topics, or print them as Strimzi KafkaTopics",
        description=(
            "create: make the missing topics (existing ones are left alone) and report any that "
            "differ. check: only compare. Both exit 1 if a topic is missing or differs. "
            "strimzi: print the same topics as Strimzi KafkaTopic resources (YAML, one document "
            "each) for the Kafka cluster named by --cluster; needs no Kafka. "
            "deploy/kubernetes/base/kafka-topics.yaml is made this way."
        ),
    )
    parser.add_argument("action", choices=("create", "check", "strimzi"))
    parser.add_argument(
        "--cluster",
        default="kafka",
        metavar="NAME",
        help="strimzi: the Strimzi Kafka cluster (label strimzi.io/cluster; default: %(default)s)",
    )
    add_config_option(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from streams.topics import check_topics, ensure_topics, strimzi_topics, topic_specs

    settings = settings_from_args(args)
    if args.action == "strimzi":
        print(_yaml_documents(strimzi_topics(topic_specs(settings.topics), args.cluster)), end="")
        return 0
    configure_logging(settings.log)
    # aiokafka logs each failed connection attempt; the command reports failures itself.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    if args.action == "create":
        report = asyncio.run(ensure_topics(settings.kafka, settings.topics))
    else:
        report = asyncio.run(check_topics(settings.kafka, settings.topics))
    broken = {problem.topic for problem in report.problems}
    for spec in topic_specs(settings.topics):
        if spec.name in broken:
            continue
        state = "created" if spec.name in report.created else "ok"
        settings_text = ", ".join(f"{k}={v}" for k, v in spec.configs.items())
        partitions = f"{spec.partitions} partition{'s' if spec.partitions > 1 else ''}"
        print(f"topic {spec.name}: {state} ({partitions}, {settings_text})")
    for problem in report.problems:
        print(problem.describe())
    if report.problems:
        print(
            f"{len(broken)} topic(s) differ from the settings on {settings.kafka.bootstrap_servers}"
        )
        return 1
    return 0


def _yaml_documents(resources: list[dict[str, Any]]) -> str:
    """Resources as a YAML stream: one JSON document each (JSON is YAML), sorted keys."""
    import json

    return "".join(f"---\n{json.dumps(r, indent=2, sort_keys=True)}\n" for r in resources)
