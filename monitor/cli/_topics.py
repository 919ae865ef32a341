"""`liqmon topics create|check`: make or verify the topics DESIGN.md describes.

Names, partition counts and the cluster come from the settings (`--config`, LIQMON_*).
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from monitor.config import add_config_option, settings_from_args
from monitor.log import configure_logging

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "topics",
        help="create or check liqmon's Kafka topics",
        description=(
            "create: make the missing topics (existing ones are left alone) and report any that "
            "differ. check: only compare. Both exit 1 if a topic is missing or differs."
        ),
    )
    parser.add_argument("action", choices=("create", "check"))
    add_config_option(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from streams.topics import check_topics, ensure_topics, topic_specs

    settings = settings_from_args(args)
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
