"""`liqmon kafka start|stop|status`: run the local single-node Kafka broker.

A thin shell over `streams.broker.LocalBroker`; see deploy/kafka/README.md.
"""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "kafka",
        help="start, stop or inspect the local Kafka broker",
        description=(
            "Run Apache Kafka (KRaft, one combined broker + controller) on 127.0.0.1 from the "
            "jars in .cache/kafka/<version>/libs. State, pid file and log live in "
            ".cache/kafka/broker-<port>/."
        ),
    )
    parser.add_argument(
        "action",
        choices=("start", "stop", "status"),
        help="start (no-op if running), stop (by recorded pid) or status (exit 1 if down)",
    )
    parser.add_argument(
        "--port", type=int, default=9092, help="client port on 127.0.0.1 (default 9092)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the broker to start or stop (default 60)",
    )
    parser.add_argument("--heap", default="768m", help="JVM heap, e.g. 512m or 1g (default 768m)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from streams.broker import BrokerOutcome, LocalBroker, find_project_root

    broker = LocalBroker(find_project_root(), port=args.port, heap=args.heap)
    if args.action == "start":
        report = broker.start(timeout_s=args.timeout)
    elif args.action == "stop":
        report = broker.stop(timeout_s=args.timeout)
    else:
        report = broker.status()
    print(report.describe())
    if args.action == "status" and report.outcome is not BrokerOutcome.RUNNING:
        return 1
    return 0
