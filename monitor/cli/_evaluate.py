"""`liqmon evaluate [FILE|-]`: what-if margin figures for a set of positions."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from monitor.cli._stress import add_stress_options, stress_output
from monitor.errors import InputError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "evaluate",
        help="what-if: margin figures, states and liquidation prices of given positions",
        description=(
            "Read instruments, mark prices and accounts (JSON, see docs/evaluate.md) and "
            "print each account's equity, margins, margin ratio, state and per-position "
            "liquidation and bankruptcy prices as a JSON array; accounts in mode "
            "'portfolio' also get their portfolio margin per underlying (risk matrix, "
            "worst scenario, liquidation move; docs/portfolio-margin.md); with 'var_es' "
            "and a price history, the var_es model's margin and VaR/ES at 99% and 97.5% "
            "under historical, filtered historical and Monte Carlo scenarios. Bad input: "
            "one line naming the field, exit code 2."
        ),
    )
    parser.add_argument(
        "file", nargs="?", default="-", metavar="FILE", help="input JSON file, '-' for stdin"
    )
    parser.add_argument("--indent", type=int, default=2, help="JSON indent (0: one line)")
    parser.add_argument(
        "--stress",
        action="store_true",
        help="print the book's solvency report under stress instead (as liqmon stress; "
        "docs/solvency.md)",
    )
    add_stress_options(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import msgspec

    from monitor.evaluate import evaluate_json

    if args.file == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            with open(args.file, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise InputError(f"cannot read {args.file}: {exc.strerror}") from None
    if args.stress:
        sys.stdout.write(stress_output(data, args).decode() + "\n")
        return 0
    output = evaluate_json(data)
    if args.indent > 0:
        output = msgspec.json.format(output, indent=args.indent)
    sys.stdout.write(output.decode() + "\n")
    return 0
