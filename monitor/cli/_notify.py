"""`liqmon notify`: forward chosen margin events to a webhook (Slack, Teams or generic JSON)."""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import get_args

from monitor.config import add_config_option, settings_from_args
from monitor.schema import MarginEventType

__all__ = ["register"]

URL_ENV = "LIQMON_NOTIFY_URL"
_DEFAULT_TYPES = ("liquidation", "bankruptcy")


def _seconds(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    types = get_args(MarginEventType)
    parser = subparsers.add_parser(
        "notify",
        help="forward chosen margin events to a webhook (Slack, Teams or generic JSON)",
        description=(
            "Consume margin-events (read_committed, consumer group --group) and POST each event "
            "of the chosen --type to a webhook: Slack or Teams incoming webhooks (a readable "
            "line) or generic JSON (the event as published, with event_id). A failing webhook "
            "is retried with exponential backoff; offsets are committed only after delivery, "
            "and event ids already delivered are never sent again, also across restarts. "
            "Instances sharing --group split the partitions. Ctrl-C or SIGTERM stops it once "
            "the request in flight is answered and committed (exit 0). See docs/events.md "
            "(Subscribing without code)."
        ),
    )
    parser.add_argument(
        "--url",
        default=os.environ.get(URL_ENV),
        metavar="URL",
        help=f"the webhook (default: ${URL_ENV}; prefer the variable, the URL is a secret)",
    )
    parser.add_argument(
        "--format",
        choices=("json", "slack", "teams"),
        default="json",
        help="request body: generic JSON, Slack or Teams incoming webhook (default: %(default)s)",
    )
    parser.add_argument(
        "--type",
        dest="types",
        action="append",
        default=[],
        choices=types,
        metavar="TYPE",
        help="forward this event type; repeat for several (default: "
        + ", ".join(_DEFAULT_TYPES)
        + "; types: "
        + ", ".join(types)
        + ")",
    )
    parser.add_argument(
        "--group",
        default="liqmon-notify",
        help="consumer group; one group per webhook (default: %(default)s)",
    )
    parser.add_argument(
        "--from-beginning",
        action="store_true",
        help="a group with no committed offset starts at the oldest retained event "
        "(default: at new events)",
    )
    parser.add_argument(
        "--retry-delay",
        type=_seconds,
        default=0.5,
        metavar="SECONDS",
        help="first retry delay, doubled per attempt up to 30 s (default: %(default)s)",
    )
    parser.add_argument(
        "--give-up-after",
        type=_seconds,
        default=600.0,
        metavar="SECONDS",
        help="exit 1 if one event keeps failing this long; it is sent again on the next "
        "start (default: %(default)s)",
    )
    parser.add_argument(
        "--dedupe-window",
        type=_count,
        default=10_000,
        metavar="N",
        help="records per partition read back at start to remember delivered event ids "
        "(default: %(default)s)",
    )
    add_config_option(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import signal

    from monitor.errors import ConfigError
    from monitor.log import configure_logging
    from monitor.notify import NotifySettings, RetryPolicy, forward_events

    if not args.url:
        raise ConfigError(f"no webhook URL: pass --url or set {URL_ENV}")
    settings = settings_from_args(args)
    configure_logging(settings.log)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    notify = NotifySettings(
        url=args.url,
        format=args.format,
        types=frozenset(args.types or _DEFAULT_TYPES),
        group_id=args.group,
        from_beginning=args.from_beginning,
        dedupe_window=args.dedupe_window,
        retry=RetryPolicy(first_delay_s=args.retry_delay, give_up_after_s=args.give_up_after),
    )
    topic = settings.topics.margin_events

    def ready(partitions: int) -> None:
        print(
            f"notify: forwarding {', '.join(sorted(notify.types))} from {topic} "
            f"({partitions} partitions, group {notify.group_id}); Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )

    async def main() -> None:
        # A signal lets the event being sent finish and be committed, then stops.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await forward_events(settings.kafka, topic, notify, on_ready=ready, stop=stop)

    asyncio.run(main())
    return 0
