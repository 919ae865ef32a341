"""`liqmon tail`: print margin events as they are published, readably or as JSON lines."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import get_args

from monitor.config import add_config_option, settings_from_args
from monitor.schema import MarginEventType

__all__ = ["register"]


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "tail",
        help="print margin events as they are published (readable lines or JSON lines)",
        description=(
            "Follow the margin-events topic (name from the settings: --config, LIQMON_*) and "
            "print one line per event: detection time, type, account ([symbol] for an isolated "
            "position), equity, IM, MM, margin ratio (MM / equity), trigger, and the positions "
            "with their mark and liquidation prices. Reads every partition read_committed "
            "(events of aborted cycles never show) without a consumer group and commits "
            "nothing, so it disturbs no other consumer. Filters by type use "
            "the record's `type` header, by account its key, before decoding. Ctrl-C stops it "
            "(exit 0). See docs/events.md."
        ),
    )
    parser.add_argument(
        "--type",
        dest="types",
        action="append",
        default=[],
        choices=get_args(MarginEventType),
        metavar="TYPE",
        help="show only this event type; repeat for several (types: "
        + ", ".join(get_args(MarginEventType))
        + ")",
    )
    parser.add_argument(
        "--account",
        dest="accounts",
        action="append",
        default=[],
        metavar="ACCOUNT",
        help="show only this account's events; repeat for several",
    )
    parser.add_argument(
        "--from-beginning",
        action="store_true",
        help="start at the oldest retained event instead of only new ones",
    )
    parser.add_argument(
        "--json", action="store_true", help="print each event as one JSON object per line"
    )
    parser.add_argument(
        "--max-events",
        type=_count,
        metavar="N",
        help="exit after printing N events (default: follow until Ctrl-C)",
    )
    add_config_option(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import signal

    from monitor.log import configure_logging
    from monitor.tail import TailFilter, tail_events
    from streams.records import InboundRecord

    settings = settings_from_args(args)
    configure_logging(settings.log)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    topic = settings.topics.margin_events
    wanted = TailFilter(types=frozenset(args.types), accounts=frozenset(args.accounts))

    def write(line: str) -> None:
        print(line, flush=True)

    def ready(partitions: int) -> None:
        start = "the oldest event" if args.from_beginning else "new events"
        print(
            f"tail: following {topic} ({partitions} partitions) on "
            f"{settings.kafka.bootstrap_servers} from {start}; Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )

    def skipped(record: InboundRecord, reason: str) -> None:
        print(
            f"tail: skipped a record that is not a margin event (partition {record.partition}, "
            f"offset {record.offset}): {reason}",
            file=sys.stderr,
            flush=True,
        )

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):  # Ctrl-C: a normal way out
            await tail_events(
                settings.kafka,
                topic,
                write,
                wanted=wanted,
                as_json=args.json,
                from_beginning=args.from_beginning,
                max_events=args.max_events,
                on_ready=ready,
                on_skip=skipped,
            )

    try:
        asyncio.run(main())
    except BrokenPipeError:
        # `liqmon tail | head`: the reader left, which is fine; stop Python's final
        # flush of stdout from complaining about the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
