"""Structured logging for liqmon: JSON lines for machines, readable lines for people.

`configure_logging` sets up structlog once per process. Output goes to stderr as one JSON
object per line, or as coloured console lines when stderr is a terminal (``format =
"auto"``). Records from libraries that use the standard `logging` module (aiokafka) pass
through the same processors, so a log shipper sees a single format. Secrets never reach the
output: `mask_secrets` replaces the value of any key that looks like a credential, also
inside settings Structs and dicts logged whole.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, Literal, TextIO

import msgspec
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["LogSettings", "configure_logging", "mask_secrets"]

MASK = "***"
_SECRET_KEY = re.compile(r"password|passwd|secret|token|credential|api_key|private_key", re.I)


class LogSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Verbosity and shape of log output."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    #: "auto": console lines on a terminal, JSON lines otherwise.
    format: Literal["auto", "json", "console"] = "auto"


def mask_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: hide credential values, however deeply they are nested."""
    return {key: _masked(key, value) for key, value in event_dict.items()}


def _masked(key: object, value: Any) -> Any:
    if isinstance(key, str) and _SECRET_KEY.search(key) and value is not None:
        return MASK
    if isinstance(value, msgspec.Struct):
        value = msgspec.to_builtins(value, enc_hook=str)
    if isinstance(value, Mapping):
        return {k: _masked(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(None, item) for item in value]
    return value


_encoder = msgspec.json.Encoder(enc_hook=str)


def _to_json(event: Any, **_: Any) -> str:
    return _encoder.encode(event).decode()


def configure_logging(settings: LogSettings | None = None, *, stream: TextIO | None = None) -> None:
    """Route structlog and standard-library logging to `stream` (default stderr).

    Safe to call again (the CLI calls it once per command; tests call it with a buffer).
    """
    settings = settings or LogSettings()
    out = stream if stream is not None else sys.stderr
    as_console = settings.format == "console" or (settings.format == "auto" and out.isatty())
    level = logging.getLevelNamesMapping()[settings.level.upper()]

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        mask_secrets,
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Processor
    if as_console:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    else:
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer(serializer=_to_json)

    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    handler.set_name("liqmon")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "liqmon"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=False,
    )
