"""Recorded input from files: JSON lines of the wire format, and price histories in CSV
or Parquet, turned into the records the service would have consumed.

* ``.jsonl`` / ``.ndjson`` / ``.json``: one ``prices`` or ``fills`` message per line,
  exactly as on the topic (a line with a ledger ``type`` is a ledger event, one without
  is a price tick).
* ``.csv`` / ``.parquet``: prices, either long (columns ``symbol``, ``mark_price`` (or
  ``price``), ``ts`` in ms since the epoch or ``time``/``date`` in ISO-8601, optional
  ``index_price`` and ``mark_iv``) or wide (a ``date``/``time``/``ts`` column, then one
  column of marks per symbol, as the bundled daily closes).

Parquet needs pyarrow (``pip install pyarrow``); everything else is the standard library.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple, get_args

import msgspec

from monitor.errors import InputError
from monitor.schema import LedgerEvent, PriceTick
from streams import Headers

__all__ = ["FileRecord", "read_input_file"]

_LEDGER_TYPES = frozenset(kind.__struct_config__.tag for kind in get_args(LedgerEvent))
_TIME_COLUMNS = ("ts", "time", "date", "timestamp")
_encode = msgspec.json.Encoder().encode


class FileRecord(NamedTuple):
    """A record read from a file, shaped like a consumed Kafka record (``InboundRecord``).

    ``offset`` numbers the file's records of one topic; ``timestamp`` is -1 (no broker
    time: the intake's clock-skew check of ledger events is skipped, as for such records).
    ``ts`` is the message's event time, used to order and batch the input.
    """

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    ts: int


class _Kind(msgspec.Struct):
    """What a line is and its key; the intake checks the rest, as for a topic's record."""

    type: Any = None
    ts: Any = 0
    symbol: Any = None
    account: Any = None


_decode_kind = msgspec.json.Decoder(_Kind).decode


def read_input_file(path: Path, prices_topic: str, fills_topic: str) -> list[FileRecord]:
    """Every record of ``path`` (format from its suffix), in file order.

    Raises InputError with the file, line and what to fix when it cannot be read.
    """
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson", ".json"):
            return _wire_lines(path, prices_topic, fills_topic)
        if suffix == ".csv":
            with path.open(newline="") as handle:
                return _price_rows(path, csv.DictReader(handle), prices_topic, offset_base=2)
        if suffix in (".parquet", ".pq"):
            return _price_rows(path, _parquet_rows(path), prices_topic, offset_base=1)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text; is it the right file?") from None
    raise InputError(
        f"{path}: unknown input format {suffix or '(no suffix)'!r}; use .jsonl (wire "
        "messages), .csv or .parquet (prices)"
    )


def _wire_lines(path: Path, prices_topic: str, fills_topic: str) -> list[FileRecord]:
    records: list[FileRecord] = []
    counts = {prices_topic: 0, fills_topic: 0}
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                kind = _decode_kind(line)
            except msgspec.DecodeError as exc:
                raise InputError(f"{path} line {number}: not a JSON message ({exc})") from None
            if kind.type is None:
                topic, key = prices_topic, kind.symbol
            elif isinstance(kind.type, str) and kind.type in _LEDGER_TYPES:
                topic, key = fills_topic, kind.account
            else:
                raise InputError(
                    f"{path} line {number}: type {kind.type!r} is neither a price tick nor a "
                    f"ledger event ({', '.join(sorted(_LEDGER_TYPES))})"
                )
            ts = kind.ts if isinstance(kind.ts, int) else 0  # the intake rejects it
            encoded = key.encode() if isinstance(key, str) else None
            records.append(FileRecord(topic, 0, counts[topic], -1, encoded, line, (), ts))
            counts[topic] += 1
    return records


def _parquet_rows(path: Path) -> Iterator[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-untyped]  # optional: Parquet only
    except ImportError:
        raise InputError(
            f"{path}: reading Parquet needs pyarrow (pip install pyarrow); or convert it to CSV"
        ) from None
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    yield from table.to_pylist()


def _price_rows(
    path: Path, rows: Iterable[Mapping[str, Any]], topic: str, *, offset_base: int
) -> list[FileRecord]:
    records: list[FileRecord] = []
    for number, row in enumerate(rows, start=offset_base):
        for tick in _ticks_of(path, number, row):
            value = _encode(tick)
            records.append(
                FileRecord(topic, 0, len(records), -1, tick.symbol.encode(), value, (), tick.ts)
            )
    return records


def _ticks_of(path: Path, number: int, row: Mapping[str, Any]) -> list[PriceTick]:
    where = f"{path} {'line' if path.suffix.lower() == '.csv' else 'row'} {number}"
    columns = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
    time_column = next((c for c in _TIME_COLUMNS if c in columns), None)
    if time_column is None:
        raise InputError(f"{where}: no time column; name one of {', '.join(_TIME_COLUMNS)}")
    ts = _millis(where, columns[time_column])
    try:
        if "symbol" in columns:  # long: one tick per row
            price: Any = columns.get("mark_price", columns.get("price"))
            iv: Any = columns.get("mark_iv")
            index: Any = columns.get("index_price")
            return [
                PriceTick(
                    symbol=str(columns["symbol"]),
                    mark_price=math.nan if _blank(price) else float(price),
                    mark_iv=None if _blank(iv) else float(iv),
                    index_price=None if _blank(index) else float(index),
                    ts=ts,
                )
            ]
        return [  # wide: one column of marks per symbol
            PriceTick(symbol=str(name), mark_price=float(value), ts=ts)
            for name, value in row.items()
            if name is not None and str(name).strip().lower() != time_column and not _blank(value)
        ]
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {exc}; prices must be numbers") from None


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _millis(where: str, value: Any) -> int:
    """Milliseconds since the epoch of an integer, a datetime/date or an ISO-8601 text."""
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return round(moment.timestamp() * 1000)
    if isinstance(value, dt.date):
        midnight = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
        return round(midnight.timestamp() * 1000)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        return _millis(where, dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise InputError(
            f"{where}: time {text!r} is neither milliseconds since the epoch nor ISO-8601"
        ) from None
