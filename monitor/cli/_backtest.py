"""`liqmon backtest`: margin models against a price history, with coverage statistics."""

from __future__ import annotations

import argparse
import math
import re
import sys
from typing import Any

from monitor.errors import InputError

__all__ = ["register"]

_MODELS = ("instrument", "var_hist", "var_fhs", "var_mc")


def _fraction(text: str) -> float:
    value = _number(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} must be between 0 and 1, e.g. 0.99")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if math.isnan(value):
        raise argparse.ArgumentTypeError("NaN is not a setting")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _days(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*d\s*", text)
    if match is None or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give the MPOR in days, e.g. 1d or 2d")
    return int(match.group(1))


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "backtest",
        help="backtest a margin model on a daily price history: exceedances, Kupiec, "
        "Christoffersen, traffic light, recalibration",
        description=(
            "For every day of a daily price history, each portfolio's margin at the start "
            "of the day against its loss realised over the margin period of risk. Prints "
            "exceedances, Kupiec's POF test, Christoffersen's independence and conditional "
            "coverage tests, the Basel traffic light zone, an ES backtest and the scale on "
            "the model's rates that would have met the target coverage, per portfolio and "
            "overall. Without --prices/--portfolios it uses the bundled S&P 500 and NASDAQ "
            "closes 2006-2011 and example portfolios. See docs/backtest.md."
        ),
    )
    parser.add_argument(
        "--prices", metavar="FILE", help="daily closes CSV: date,<symbol>,... (default: bundled)"
    )
    parser.add_argument(
        "--portfolios",
        metavar="FILE",
        help="instruments and portfolios JSON (default: bundled examples)",
    )
    parser.add_argument(
        "--model",
        choices=_MODELS,
        default="instrument",
        help="instrument: each instrument's own maintenance margin (tiered, size_scaled); "
        "var_hist / var_fhs / var_mc: ES at --confidence over the MPOR from historical, "
        "filtered historical or Monte Carlo scenarios (default: instrument)",
    )
    parser.add_argument(
        "--confidence", type=_fraction, default=0.99, help="target coverage (default 0.99)"
    )
    parser.add_argument(
        "--mpor", type=_days, default=1, metavar="Nd", help="margin period of risk (default 1d)"
    )
    parser.add_argument(
        "--window", type=_positive_int, default=250, help="historical scenarios (default 250)"
    )
    parser.add_argument(
        "--lambda", dest="lam", type=_fraction, default=0.94, help="EWMA decay (default 0.94)"
    )
    parser.add_argument(
        "--warmup", type=_positive_int, default=30, help="returns before the first EWMA (30)"
    )
    parser.add_argument(
        "--paths", type=_positive_int, default=10_000, help="Monte Carlo paths (default 10000)"
    )
    parser.add_argument(
        "--dof", type=_number, default=5.0, help="Student-t degrees of freedom, > 2 (default 5)"
    )
    parser.add_argument("--seed", type=int, default=1, help="Monte Carlo seed (default 1)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--report", metavar="FILE", help="also write an HTML report with plots")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import msgspec

    from monitor.backtest import (
        BUNDLED_PORTFOLIOS,
        BUNDLED_PRICES,
        BacktestConfig,
        format_report,
        load_portfolios,
        load_prices,
        render_report,
        run_backtest,
    )

    history = load_prices(args.prices or BUNDLED_PRICES)
    book = load_portfolios(args.portfolios or BUNDLED_PORTFOLIOS, history)
    config = BacktestConfig(
        model=args.model,
        confidence=args.confidence,
        mpor_days=args.mpor,
        window=args.window,
        lam=args.lam,
        warmup=args.warmup,
        paths=args.paths,
        dof=args.dof,
        seed=args.seed,
    )
    days = max(0, history.prices.shape[0] - config.mpor_days - config.first_day())
    with _Progress(days) as advance:
        run = run_backtest(history, book, config, advance)
    if args.report:
        try:
            with open(args.report, "w", encoding="utf-8") as handle:
                handle.write(render_report(run))
        except OSError as exc:
            raise InputError(f"cannot write the report {args.report}: {exc.strerror}") from None
    if args.json:
        output = msgspec.json.format(msgspec.json.encode(run.report), indent=2)
        sys.stdout.write(output.decode() + "\n")
    else:
        sys.stdout.write(format_report(run.report))
    return 0


class _Progress:
    """A tqdm bar over the backtest days on a terminal (stderr), nothing otherwise."""

    def __init__(self, total: int) -> None:
        self._bar: Any = None
        if sys.stderr.isatty() and total > 0:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="day", desc="backtest", leave=False)

    def __enter__(self) -> Any:
        return self._bar.update if self._bar is not None else None

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
