"""`liqmon replay`: recorded input through the engine; its events, and a diff with the live ones."""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from monitor.config import add_config_option

__all__ = ["register"]

_OFFSET = re.compile(r"^(?P<topic>[^:=\s]+):(?P<partition>\d+)=(?P<offset>\d+)$")
_PROGRESS_INTERVAL_S = 5.0


def _when(text: str) -> int:
    """Milliseconds since the epoch from ms or ISO-8601 (UTC unless an offset is given)."""
    if text.strip().isdigit():
        return int(text)
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither milliseconds since the epoch nor an ISO-8601 time "
            "(e.g. 2026-12-02T09:30:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return round(moment.timestamp() * 1000)


def _offset(text: str) -> tuple[str, int, int]:
    match = _OFFSET.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give TOPIC:PARTITION=OFFSET, e.g. fills:0=1500"
        )
    return match["topic"], int(match["partition"]), int(match["offset"])


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number of at least 1")
    return int(text)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "replay",
        help="run the engine over recorded input; write its events or diff them with margin-events",
        description=(
            "Run the engine over recorded input, as fast as it goes: the prices and fills "
            "topics (from the settings), or files (--input). From Kafka, the cycles are the "
            "live monitor's own (its cycle records in liqmon-state), so the events are those "
            "it published, with the same ids; without records (files, service.record_cycles "
            "off) replay forms its own cycles and says so. Writes the events the monitor "
            "would have published (--output, --output-topic) and with --compare diffs them "
            "with margin-events (or --expected FILE): missing, extra and different (field by "
            "field). Exit code 0 when they agree, 1 when they differ, 2 for bad input. "
            "How-to: docs/replay.md."
        ),
    )
    parser.add_argument(
        "--instruments", type=Path, required=True, metavar="FILE", help="the instruments file"
    )
    source = parser.add_argument_group("input")
    source.add_argument(
        "--input",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="replay files instead of Kafka (repeat for several): .jsonl of prices and fills "
        "messages as on the topics, .csv or .parquet of prices (long: symbol, mark_price, ts; "
        "or wide: a date/ts column and one column per symbol)",
    )
    source.add_argument("--run", metavar="RUN", help="which recorded run (default: the first)")
    source.add_argument(
        "--own-batching",
        action="store_true",
        help="ignore the recorded cycles and form cycles of --cycle-ms",
    )
    source.add_argument(
        "--cycle-ms",
        type=_positive_int,
        default=100,
        metavar="MS",
        help="own batching: event time per cycle (default: %(default)s)",
    )
    source.add_argument(
        "--start",
        type=_when,
        metavar="TIME",
        help="write events from the first cycle at TIME (ms since the epoch or ISO-8601); "
        "the cycles before still run",
    )
    source.add_argument(
        "--end", type=_when, metavar="TIME", help="stop before the first cycle at TIME"
    )
    source.add_argument(
        "--start-offset",
        type=_offset,
        action="append",
        default=[],
        metavar="TOPIC:PARTITION=OFFSET",
        help="write events from the first cycle reading this offset (repeatable)",
    )
    source.add_argument(
        "--end-offset",
        type=_offset,
        action="append",
        default=[],
        metavar="TOPIC:PARTITION=OFFSET",
        help="stop before the first cycle reading this offset or later (repeatable)",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--output", metavar="FILE", help="write the events as JSON lines ('-': stdout)"
    )
    output.add_argument("--output-topic", metavar="TOPIC", help="produce the events to TOPIC")
    output.add_argument(
        "--compare",
        action="store_true",
        help="diff the events with what margin-events holds (or --expected)",
    )
    output.add_argument(
        "--expected",
        type=Path,
        metavar="FILE",
        help="compare with these events (JSON lines) instead of the topic",
    )
    output.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="FIELD",
        help="a field not compared, e.g. detected_ts (repeatable)",
    )
    output.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    add_config_option(parser)
    parser.set_defaults(handler=_replay)


def _replay(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from monitor.config import settings_from_args
    from monitor.instruments import load_instruments
    from monitor.replay import ReplayOptions

    settings = settings_from_args(args)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    instruments = load_instruments(args.instruments)
    from streams import TopicPartition

    options = ReplayOptions(
        files=tuple(args.input),
        run=args.run,
        own_batching=args.own_batching,
        cycle_ms=args.cycle_ms,
        start_ms=args.start,
        end_ms=args.end,
        start_offsets={TopicPartition(t, p): o for t, p, o in args.start_offset},
        end_offsets={TopicPartition(t, p): o for t, p, o in args.end_offset},
    )
    say: IO[str] = sys.stderr if args.output == "-" else sys.stdout
    return asyncio.run(_main(settings, instruments, options, args, say))


async def _main(settings: Any, instruments: Any, options: Any, args: Any, say: IO[str]) -> int:
    from monitor.replay import (
        compare,
        publish_events,
        read_events_file,
        read_published,
        replay,
        within_scope,
        within_span,
        write_events,
    )
    from streams import topic_partitions

    # What can fail fast does, before the replay.
    if args.output_topic:
        await topic_partitions(settings.kafka, args.output_topic)
    expected_file = read_events_file(args.expected) if args.expected is not None else None
    progress, finish = _progress(args.quiet)

    def waiting(line: str) -> None:
        print(f"note: {line}", file=sys.stderr, flush=True)

    try:
        result = await replay(settings, instruments, options, progress, waiting)
    finally:
        finish()
    print(
        f"replayed {result.cycles} cycles ({result.batching}): {len(result.published)} events",
        file=say,
    )
    for note in result.notes:
        print(f"note: {note}", file=say)
    if args.output == "-":
        write_events(sys.stdout.buffer, result.published)
        sys.stdout.flush()
    elif args.output:
        _write_file(Path(args.output), result.published)
    if args.output_topic:
        await publish_events(settings.kafka, args.output_topic, result.published)
    if not args.compare and expected_file is None:
        return 0
    if expected_file is not None:
        expected, where = expected_file, str(args.expected)
    else:
        expected = await read_published(settings.kafka, settings.topics.margin_events, waiting)
        where = settings.topics.margin_events
    if result.partial and result.first_ms is not None and result.last_ms is not None:
        expected = within_span(expected, result.first_ms, result.last_ms)
        where += " (events detected within the replayed cycles)"
    if result.scope is not None:
        expected = within_scope(expected, result.scope)
        where += " (what the replayed instance published)"
    comparison = compare(expected, result.published, args.ignore)
    for line in comparison.details():
        print(line, file=say)
    print(f"compare with {where}: {comparison.summary()}", file=say)
    return 0 if comparison.clean else 1


def _write_file(path: Path, published: Any) -> None:
    from monitor.replay import write_events

    with path.open("wb") as out:
        write_events(out, published)


def _progress(quiet: bool) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A tqdm bar on a terminal, a line every few seconds otherwise (nothing if quiet)."""
    if quiet:
        return (lambda done, total: None), (lambda: None)
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(unit=" cycles", file=sys.stderr, dynamic_ncols=True)

        def advance(done: int, total: int) -> None:
            if total and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        return advance, bar.close
    next_line = time.monotonic() + _PROGRESS_INTERVAL_S

    def log_line(done: int, total: int) -> None:
        nonlocal next_line
        now = time.monotonic()
        if now >= next_line:
            next_line = now + _PROGRESS_INTERVAL_S
            of = f" of {total}" if total else ""
            print(f"liqmon replay: {done}{of} cycles", file=sys.stderr, flush=True)

    return log_line, lambda: None
