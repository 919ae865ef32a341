"""`liqmon stress [FILE|-]`: the solvency report of a book of accounts under stress."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from monitor.errors import InputError

__all__ = ["add_stress_options", "register", "stress_output"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "stress",
        help="what-if: bad debt, fund coverage, Cover-2 and ADL queue of a book under stress",
        description=(
            "Read instruments, mark prices and accounts (the liqmon evaluate input, see "
            "docs/evaluate.md), stress the whole book under the named scenarios and print "
            "the solvency_report (docs/solvency.md) as JSON: per scenario the bad debt, the "
            "accounts that would go bankrupt, the largest contributors and the insurance "
            "fund's coverage; Cover-2; the auto-deleveraging queues. The same as "
            "liqmon evaluate --stress. Bad input: one line naming the field, exit code 2."
        ),
    )
    parser.add_argument(
        "file", nargs="?", default="-", metavar="FILE", help="input JSON file, '-' for stdin"
    )
    parser.add_argument("--indent", type=int, default=2, help="JSON indent (0: one line)")
    add_stress_options(parser)
    parser.set_defaults(handler=_run)


def add_stress_options(parser: argparse.ArgumentParser) -> None:
    """The options that shape a stress report (shared with ``liqmon evaluate --stress``)."""
    parser.add_argument(
        "--scenarios",
        metavar="FILE",
        help="JSON list of scenarios {name, moves: {underlying: fraction}, default_move, vol}; "
        "default: each underlying -30%%, -50%%, +50%% with vol up and a joint -50%% crash",
    )
    parser.add_argument(
        "--history",
        metavar="FILE",
        default="",
        help="daily closes CSV date,<underlying>,...: add its worst day as a scenario",
    )
    parser.add_argument(
        "--fund", type=float, default=0.0, help="insurance fund in the valuation asset (0)"
    )
    parser.add_argument(
        "--group-separator",
        default="",
        help="Cover-2 groups: accounts whose ids agree up to this text (default: each account)",
    )
    parser.add_argument("--top", type=int, default=10, help="largest contributors per scenario")
    parser.add_argument(
        "--accounts", type=int, default=100, help="bankrupt accounts listed per scenario"
    )
    parser.add_argument("--queue", type=int, default=20, help="candidates per ADL queue")


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
    import math

    import msgspec

    from monitor.errors import ConfigError
    from monitor.evaluate import decode_request, load_request
    from monitor.schema import StressScenario
    from monitor.solvency import Stresser, book_state
    from monitor.strict import convert_strict

    scenarios: list[StressScenario] = []
    if args.scenarios:
        try:
            raw = msgspec.json.decode(_read(args.scenarios))
        except msgspec.DecodeError as exc:
            raise InputError(f"{args.scenarios} is not valid JSON: {exc}") from None
        scenarios = list(convert_strict(raw, tuple[StressScenario, ...]))
    if not (math.isfinite(args.fund) and args.fund >= 0.0):
        raise InputError(f"--fund {args.fund!r}: must be a finite amount >= 0")
    for name in ("top", "accounts", "queue"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name} {getattr(args, name)}: must be at least 1")
    engine = load_request(decode_request(data))
    bases = sorted({i.base for i in engine.book.instruments})
    try:
        stresser = Stresser(
            bases,
            scenarios,
            history_file=args.history,
            group_separator=args.group_separator,
            top=args.top,
            report_accounts=args.accounts,
            queue_length=args.queue,
        )
    except ConfigError as exc:
        message = str(exc).replace("solvency.history_file", "--history", 1)
        raise InputError(message.replace("solvency.scenarios", "--scenarios ", 1)) from None
    report = stresser.report(book_state(engine), args.fund, ts=0)
    output: bytes = msgspec.json.encode(report)
    if args.indent > 0:
        output = msgspec.json.format(output, indent=args.indent)
    return output


def _run(args: argparse.Namespace) -> int:
    sys.stdout.write(stress_output(_read(args.file), args).decode() + "\n")
    return 0
