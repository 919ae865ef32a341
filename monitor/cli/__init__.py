"""The `liqmon` command line.

Each sub-command lives in its own module `monitor.cli._<name>` exposing
``register(subparsers)``, which adds an argparse parser whose ``handler`` default
is a function ``(args) -> int``. Heavy imports (numpy, aiokafka) happen inside the
handlers so that ``liqmon --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence

from monitor import __version__
from monitor.errors import LiqmonError
from streams.errors import StreamsError

__all__ = ["build_parser", "main"]

# Order is the order shown by `liqmon --help`.
_COMMANDS: tuple[str, ...] = (
    "run",
    "simulate",
    "tail",
    "notify",
    "evaluate",
    "stress",
    "backtest",
    "replay",
    "schema",
    "kafka",
    "topics",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liqmon",
        description=(
            "Streaming liquidation monitor: reads price ticks and account fills from Kafka, "
            "keeps every account's margin up to date, publishes margin-call and liquidation events."
        ),
    )
    parser.add_argument("--version", action="version", version=f"liqmon {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        module = importlib.import_module(f"monitor.cli._{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = handler(args)
    except (LiqmonError, StreamsError) as exc:
        print(f"liqmon: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        message = _kafka_failure(exc)
        if message is None:
            raise
        print(f"liqmon: error: {message}", file=sys.stderr)
        return 1
    return code


def _kafka_failure(exc: Exception) -> str | None:
    """One line for a Kafka client error that reached the top, or None if it is not one."""
    if "aiokafka" not in sys.modules:
        return None
    from aiokafka.errors import KafkaConnectionError, KafkaError

    if isinstance(exc, KafkaConnectionError):
        hosts = ", ".join(f"{h}:{p}" for h, p in re.findall(r"\('([^']+)', (\d+)", str(exc)))
        return (
            f"cannot reach Kafka at {hosts or 'the bootstrap servers'}: is it running? "
            "(`liqmon kafka start` runs a local one; kafka.bootstrap_servers or "
            "LIQMON_KAFKA__BOOTSTRAP_SERVERS sets where)"
        )
    if isinstance(exc, KafkaError):
        return f"Kafka refused a request: {type(exc).__name__}: {exc}; check the broker's log"
    return None
