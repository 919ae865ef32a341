"""`liqmon schema`: JSON Schema of every message, generated from monitor.schema."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from monitor.config import add_config_option, settings_from_args

__all__ = ["document", "register"]

_MESSAGES = (
    "prices",
    "fills",
    "margin-events",
    "liqmon-state",
    "instruments",
    "evaluate",
    "settings",
    "asyncapi",
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "schema",
        help="print the JSON Schema of a topic's messages or an input file",
        description=(
            "Print the JSON Schema (2020-12) of one message kind, generated from the same "
            "msgspec Structs the monitor decodes with: prices (PriceTick), fills (the ledger "
            "union, tagged by type), margin-events (MarginEvent), liqmon-state (the changelog), "
            "instruments (the --instruments file: a list of instruments, or an object with "
            "instruments and reference_prices, as JSON or as TOML tables), evaluate (liqmon "
            "evaluate input), settings (the --config TOML file). Input files reject unknown "
            "fields (keys starting with _ are comments in instruments and evaluate input); "
            "topic messages (prices, fills) allow them, for forward compatibility. asyncapi: "
            "the AsyncAPI 3 document of every topic (keys, headers, payloads; topic names and "
            "partitions from the settings, --config and LIQMON_*), as docs/asyncapi.json."
        ),
    )
    parser.add_argument("message", choices=_MESSAGES)
    add_config_option(parser)
    parser.set_defaults(handler=_run)


def document(message: str) -> dict[str, Any]:
    """The JSON Schema (2020-12) of ``message``, one of the choices of ``liqmon schema``."""
    import msgspec

    from monitor import schema
    from monitor.config import Settings
    from monitor.instruments import InstrumentFile
    from monitor.strict import allow_comment_keys

    types: dict[str, Any] = {
        "prices": schema.PriceTick,
        "fills": schema.LedgerEvent,
        "margin-events": schema.MarginEvent,
        "liqmon-state": schema.StateRecord,
        # What monitor.instruments accepts: a list, or the object form (TOML: tables).
        "instruments": tuple[schema.Instrument, ...] | InstrumentFile,
        "evaluate": schema.EvaluateRequest,
        "settings": Settings,
    }
    generated: dict[str, Any] = _without_nan_defaults(msgspec.json.schema(types[message]))
    if message in ("instruments", "evaluate"):
        generated = allow_comment_keys(generated)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **generated}


def _run(args: argparse.Namespace) -> int:
    import msgspec

    if args.message == "asyncapi":
        from monitor.asyncapi import asyncapi_document

        generated = asyncapi_document(settings_from_args(args).topics)
    else:
        generated = document(args.message)
    text = msgspec.json.format(msgspec.json.encode(generated), indent=2).decode()
    sys.stdout.write(text + "\n")
    return 0


def _without_nan_defaults(node: Any) -> Any:
    """The schema without ``default`` entries that are NaN ("absent", e.g. a tick's
    ``mark_price``): JSON has no NaN, and ``null`` would claim a value the decoder refuses."""
    if isinstance(node, dict):
        return {
            key: _without_nan_defaults(value)
            for key, value in node.items()
            if not (key == "default" and isinstance(value, float) and value != value)
        }
    if isinstance(node, list):
        return [_without_nan_defaults(value) for value in node]
    return node
