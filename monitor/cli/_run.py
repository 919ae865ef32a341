"""`liqmon run`: the monitor itself, Kafka in, margin events out."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from monitor.config import add_config_option, settings_from_args
from monitor.log import configure_logging

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the monitor: prices and fills in, margin events out",
        description=(
            "Read every partition of the prices topic from the beginning, then consume the fills "
            "topic in a consumer group, keep every account's margin up to date and publish "
            "margin-call and liquidation events. Serves /metrics, /healthz and /readyz on "
            "service.http_host:service.http_port. SIGTERM or Ctrl-C finishes the cycle in hand, "
            "commits and exits."
        ),
    )
    parser.add_argument(
        "--instruments",
        type=Path,
        required=True,
        metavar="FILE",
        help="instrument specs, JSON or TOML (same objects as `liqmon evaluate` input)",
    )
    add_config_option(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from monitor.allocator import return_large_blocks
    from monitor.instruments import load_instruments
    from monitor.service import Monitor

    return_large_blocks()  # before the book is built: see monitor.allocator
    settings = settings_from_args(args)
    configure_logging(settings.log)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    instruments = load_instruments(args.instruments)
    monitor = Monitor(settings, instruments)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, monitor.stop)
        await monitor.run()

    asyncio.run(main())
    return 0
