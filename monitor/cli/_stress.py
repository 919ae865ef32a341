"""`liqmon stress [FILE|-]` or `liqmon stress --from-state`: a book's solvency report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.config import add_config_option
from monitor.errors import InputError

if TYPE_CHECKING:
    from monitor.config import SolvencySettings
    from monitor.engine import Engine

__all__ = ["add_stress_options", "register", "stress_output"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "stress",
        help="what-if: bad debt, fund coverage, Cover-2 and ADL queue of a book under stress",
        description=(
            "Stress a whole book under the named scenarios and print the solvency_report "
            "(docs/solvency.md) as JSON: per scenario the bad debt, the accounts that would go "
            "bankrupt, the largest contributors and the insurance fund's coverage; Cover-2; "
            "the auto-deleveraging queues. The book is a file of instruments, mark prices and "
            "accounts (the liqmon evaluate input, docs/evaluate.md; the same as liqmon "
            "evaluate --stress), or with --from-state the running monitor's book, rebuilt from "
            "its liqmon-state topic, the ledger after its snapshots and the prices topic, "
            "without joining its consumer group; then the scenarios, fund and report sizes "
            "default to the settings' [solvency] and service.insurance_fund, so the report is "
            "the one the monitor publishes. Bad input: one line naming the field, exit code 2."
        ),
    )
    parser.add_argument(
        "file",
        nargs="?",
        default=None,
        metavar="FILE",
        help="input JSON file, '-' for stdin (default); not with --from-state",
    )
    parser.add_argument(
        "--from-state",
        action="store_true",
        help="stress the running monitor's book, read from Kafka (topics and broker from "
        "--config / LIQMON_* settings; needs --instruments)",
    )
    parser.add_argument(
        "--instruments",
        type=Path,
        metavar="FILE",
        help="with --from-state: the monitor's instruments file",
    )
    add_config_option(parser)
    parser.add_argument("--indent", type=int, default=2, help="JSON indent (0: one line)")
    add_stress_options(parser)
    parser.set_defaults(handler=_run)


def add_stress_options(parser: argparse.ArgumentParser) -> None:
    """The options that shape a stress report (shared with ``liqmon evaluate --stress``)."""
    parser.add_argument(
        "--scenarios",
        metavar="FILE",
        help="JSON list of scenarios {name, moves: {underlying: fraction}, default_move, vol}; "
        "default: solvency.scenarios, else each underlying -30%%, -50%%, +50%% with vol up "
        "and a joint -50%% crash",
    )
    parser.add_argument(
        "--history",
        metavar="FILE",
        default=None,
        help="daily closes CSV date,<underlying>,...: add its worst day as a scenario",
    )
    parser.add_argument(
        "--fund",
        type=float,
        default=None,
        help="insurance fund in the valuation asset (default 0; with --from-state "
        "service.insurance_fund at the current prices)",
    )
    parser.add_argument(
        "--group-separator",
        default=None,
        help="Cover-2 groups: accounts whose ids agree up to this text (default: each account)",
    )
    parser.add_argument(
        "--top", type=int, default=None, help="largest contributors per scenario (10)"
    )
    parser.add_argument(
        "--accounts", type=int, default=None, help="bankrupt accounts listed per scenario (100)"
    )
    parser.add_argument("--queue", type=int, default=None, help="candidates per ADL queue (20)")


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None


def stress_output(data: bytes, args: argparse.Namespace) -> bytes:
    """The solvency report (JSON) of the evaluate input ``data`` under ``args``' options."""
    from monitor.config import SolvencySettings
    from monitor.evaluate import decode_request, load_request

    engine = load_request(decode_request(data))
    return _report(engine, args, SolvencySettings(), {})


def _report(
    engine: Engine, args: argparse.Namespace, solvency: SolvencySettings, fund: dict[str, float]
) -> bytes:
    """The report of ``engine``'s book; options not given come from ``solvency``/``fund``."""
    import math

    import msgspec

    from monitor.errors import ConfigError
    from monitor.schema import StressScenario
    from monitor.solvency import Stresser, book_state
    from monitor.solvency_publisher import fund_value
    from monitor.strict import convert_strict

    scenarios: list[StressScenario] = list(solvency.scenarios)
    if args.scenarios:
        try:
            raw = msgspec.json.decode(_read(args.scenarios))
        except msgspec.DecodeError as exc:
            raise InputError(f"{args.scenarios} is not valid JSON: {exc}") from None
        scenarios = list(convert_strict(raw, tuple[StressScenario, ...]))
    amount = fund_value(engine, fund) if args.fund is None else args.fund
    if not (math.isfinite(amount) and amount >= 0.0):
        raise InputError(f"--fund {args.fund!r}: must be a finite amount >= 0")
    for name in ("top", "accounts", "queue"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise InputError(f"--{name} {getattr(args, name)}: must be at least 1")
    bases = sorted({i.base for i in engine.book.instruments})
    try:
        stresser = Stresser(
            bases,
            scenarios,
            history_file=_given(args.history, solvency.history_file),
            group_separator=_given(args.group_separator, solvency.group_separator),
            top=_given(args.top, solvency.top),
            report_accounts=_given(args.accounts, solvency.report_accounts),
            queue_length=_given(args.queue, solvency.adl_queue_length),
        )
    except ConfigError as exc:
        message = str(exc).replace("solvency.history_file", "--history", 1)
        raise InputError(message.replace("solvency.scenarios", "--scenarios ", 1)) from None
    report = stresser.report(book_state(engine), amount, ts=0)
    output: bytes = msgspec.json.encode(report)
    if args.indent > 0:
        output = msgspec.json.format(output, indent=args.indent)
    return output


def _given(option: Any, setting: Any) -> Any:
    return setting if option is None else option


def _from_state(args: argparse.Namespace) -> bytes:
    """The report of the running monitor's book, rebuilt from Kafka."""
    import asyncio
    import logging

    from monitor.config import settings_from_args
    from monitor.instruments import load_instruments
    from monitor.log import configure_logging
    from monitor.solvency_source import book_from_state

    if args.file is not None:
        raise InputError("give either a FILE of accounts or --from-state, not both")
    if args.instruments is None:
        raise InputError("--from-state needs --instruments FILE (the monitor's instruments)")
    settings = settings_from_args(args)
    configure_logging(settings.log)  # logs go to stderr, the report to stdout
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    instruments = load_instruments(args.instruments)
    engine = asyncio.run(book_from_state(settings, instruments))
    return _report(engine, args, settings.solvency, settings.service.insurance_fund)


def _run(args: argparse.Namespace) -> int:
    from_file = not args.from_state
    output = stress_output(_read(args.file or "-"), args) if from_file else _from_state(args)
    sys.stdout.write(output.decode() + "\n")
    return 0
