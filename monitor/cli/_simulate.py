"""`liqmon simulate`: publish a seeded market (prices) and accounts (fills) at a target rate."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

from monitor.config import add_config_option, settings_from_args
from monitor.errors import ConfigError, InputError
from monitor.instruments import InstrumentFile

__all__ = ["register"]

# Shipped as package data, so the default works from any install (wheel, image, editable).
_EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "instruments.json"


def _positive(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="publish a seeded market and leveraged accounts to the prices and fills topics",
        description=(
            "Publish one opening price per instrument (topic `prices`, key = symbol), then for "
            "each account a deposit, margin settings, opening fills and isolated top-ups (topic "
            "`fills`, key = account), then a stream of mark prices at --rate ticks per second: "
            "geometric Brownian motion with jumps, plus a sharp fall with --scenario crash. "
            "Accounts start healthy; a crash liquidates some. Option instruments in the file are "
            "ticked with a volatility smile that moves with their underlying and traded by "
            "option accounts (short strangles, covered calls, spreads, naked puts); inverse "
            "instruments by coin-margined accounts; "
            "--write-option-chain makes such a file. The same --seed (and --start-ts) "
            "gives the same messages. Runs until --ticks or --duration, or Ctrl-C. "
            "Topic names and the cluster come from the settings (--config, LIQMON_*). "
            "See docs/simulate.md."
        ),
    )
    market = parser.add_argument_group("market")
    market.add_argument(
        "--instruments",
        type=Path,
        default=_EXAMPLE,
        metavar="FILE",
        help="instruments and their reference_prices, JSON or TOML "
        "(default: the example shipped with liqmon, monitor/examples/instruments.json)",
    )
    market.add_argument(
        "--instruments-count",
        type=_count,
        metavar="M",
        help="use only the first M instruments of the file (default: all)",
    )
    market.add_argument(
        "--accounts",
        type=_count,
        default=1000,
        metavar="N",
        help="accounts to create (default: %(default)s)",
    )
    market.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    market.add_argument(
        "--isolated",
        type=_fraction,
        default=0.2,
        metavar="FRACTION",
        help="share of accounts in isolated margin mode (default: %(default)s)",
    )
    market.add_argument(
        "--volatility",
        type=_positive,
        default=0.8,
        metavar="SIGMA",
        help="annualised volatility of every instrument (default: %(default)s)",
    )
    market.add_argument(
        "--start-ts",
        type=int,
        metavar="MS",
        help="event time of the first message, ms since the epoch; pins tick times for "
        "byte-identical reruns (default: now, and tick times follow the wall clock)",
    )
    scenario = parser.add_argument_group("scenario")
    scenario.add_argument(
        "--scenario",
        choices=("normal", "crash"),
        default="normal",
        help="normal: random walk with jumps; crash: add a market-wide fall (default: %(default)s)",
    )
    scenario.add_argument(
        "--crash-at",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="when the fall starts, in seconds after the tick stream starts (default: %(default)s)",
    )
    scenario.add_argument(
        "--crash-drop",
        type=_fraction,
        default=0.3,
        metavar="FRACTION",
        help="typical fall, 0.3 = 30%% (default: %(default)s); each base asset falls this "
        "times a factor between 0.75 and 1.25",
    )
    scenario.add_argument(
        "--crash-seconds",
        type=_positive,
        default=3.0,
        metavar="SECONDS",
        help="how long the fall takes (default: %(default)s)",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--rate",
        type=_positive,
        default=1000.0,
        metavar="TICKS_PER_S",
        help="target price ticks per second, all instruments together (default: %(default)s)",
    )
    limit = output.add_mutually_exclusive_group()
    limit.add_argument(
        "--ticks",
        type=_count,
        metavar="N",
        help="stop after N price records in all, the opening prices included",
    )
    limit.add_argument(
        "--duration",
        type=_positive,
        metavar="SECONDS",
        help="stop after streaming ticks for this long (rate x SECONDS ticks after the ledger)",
    )
    output.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    output.add_argument(
        "--write-option-chain",
        type=Path,
        metavar="OUT",
        help="write --instruments plus a chain of options (expiries 7, 30 and 90 days from "
        "now, strikes 70-130 %% of the reference price) on the --option-underlying and a "
        "coin-margined (inverse) perpetual on its base to OUT (JSON) and exit; give OUT to "
        "both `liqmon run` (with the base coin as collateral) and `liqmon simulate`",
    )
    output.add_argument(
        "--option-underlying",
        metavar="SYMBOL",
        help="the instrument whose mark the written chain is on (default: the first)",
    )
    add_config_option(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import signal
    import time

    from monitor.instruments import load_instrument_file
    from monitor.log import configure_logging
    from monitor.market import CrashSpec, MarketSpec
    from monitor.simulate import Progress, SimulationTarget, run_simulation

    settings = settings_from_args(args)
    configure_logging(settings.log)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    loaded = load_instrument_file(args.instruments)
    if args.write_option_chain is not None:
        return _write_option_chain(args, loaded)
    instruments = list(loaded.instruments)
    if args.instruments_count is not None:
        if args.instruments_count > len(instruments):
            raise ConfigError(
                f"--instruments-count {args.instruments_count}: {args.instruments} has only "
                f"{len(instruments)} instruments"
            )
        instruments = instruments[: args.instruments_count]
    missing = [
        i.symbol
        for i in instruments
        if i.kind != "option" and i.symbol not in loaded.reference_prices
    ]
    if missing:
        raise InputError(
            f"{args.instruments}: no reference price for {', '.join(missing)}; add them to "
            "reference_prices (the simulation's start prices)"
        )
    if args.ticks is not None and args.ticks < len(instruments):
        raise ConfigError(
            f"--ticks {args.ticks}: must be at least {len(instruments)}, one opening price "
            "per instrument"
        )
    crash = None
    if args.scenario == "crash":
        crash = CrashSpec(at_s=args.crash_at, drop=args.crash_drop, duration_s=args.crash_seconds)
    spec = MarketSpec(
        seed=args.seed,
        start_ts=args.start_ts if args.start_ts is not None else time.time_ns() // 1_000_000,
        step_s=len(instruments) / args.rate,
        volatility=args.volatility,
        crash=crash,
        accounts=args.accounts,
        isolated_fraction=args.isolated,
    )
    target = SimulationTarget(
        prices_topic=settings.topics.prices,
        fills_topic=settings.topics.fills,
        rate=args.rate,
        ticks=args.ticks,
        duration_s=args.duration,
    )
    say = _printer(args.quiet)
    say(
        f"simulate: {len(instruments)} instruments, {args.accounts} accounts, seed {args.seed}, "
        f"{args.rate:g} ticks/s, scenario {args.scenario}"
        + (
            f" at {args.crash_at:g}s (-{args.crash_drop:.0%} over {args.crash_seconds:g}s)"
            if crash
            else ""
        )
        + f" -> {target.prices_topic}, {target.fills_topic} on {settings.kafka.bootstrap_servers}"
    )

    def progress(p: Progress) -> None:
        say(
            f"simulate: {p.elapsed_s:7.1f}s  ticks {p.ticks:>10}  fills {p.ledger:>10}  "
            f"{p.tick_rate:9.0f} ticks/s"
        )

    def finish(p: Progress) -> None:
        say(f"simulate: sent {p.ticks} ticks and {p.ledger} ledger records in {p.elapsed_s:.1f}s")

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        try:
            await run_simulation(
                settings.kafka,
                instruments,
                # Options have no start price: their marks come from the smile.
                [loaded.reference_prices.get(i.symbol, math.nan) for i in instruments],
                spec,
                target,
                on_progress=progress,
                on_finish=finish,
                shift_ticks=args.start_ts is None,
            )
        except asyncio.CancelledError:
            say("simulate: interrupted")

    asyncio.run(main())
    return 0


def _write_option_chain(args: argparse.Namespace, loaded: InstrumentFile) -> int:
    import time

    import msgspec

    from monitor.coin_market import inverse_perpetual
    from monitor.option_market import option_chain

    symbol = args.option_underlying or loaded.instruments[0].symbol
    underlying = next((i for i in loaded.instruments if i.symbol == symbol), None)
    if underlying is None or symbol not in loaded.reference_prices:
        raise InputError(
            f"--option-underlying {symbol}: not an instrument with a reference price in "
            f"{args.instruments}"
        )
    price = loaded.reference_prices[symbol]
    chain = option_chain(underlying, price, time.time_ns() // 1_000_000)
    perpetual = inverse_perpetual(underlying.base)
    out = InstrumentFile(
        instruments=(*loaded.instruments, perpetual, *chain),
        reference_prices={**loaded.reference_prices, perpetual.symbol: price},
    )
    try:
        args.write_option_chain.write_bytes(msgspec.json.format(msgspec.json.encode(out)))
    except OSError as exc:
        raise InputError(f"{args.write_option_chain}: cannot write: {exc.strerror}") from None
    print(
        f"simulate: wrote {len(chain)} options on {symbol} and {perpetual.symbol} (inverse, "
        f"settled in {perpetual.base}) to {args.write_option_chain}"
    )
    return 0


def _printer(quiet: bool) -> Callable[[str], None]:
    def say(line: str) -> None:
        if not quiet:
            print(line, file=sys.stderr, flush=True)

    return say
