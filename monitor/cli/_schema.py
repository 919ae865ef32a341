"""`liqmon schema`: JSON Schema of every message, generated from monitor.schema."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from monitor.config import add_config_option, settings_from_args

__all__ = ["register"]

_MESSAGES = (
    "prices",
    "fills",
    "margin-events",
    "liqmon-state",
    "instruments",
    "evaluate",
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
            "instruments (the --instruments file), evaluate (liqmon evaluate input). asyncapi: the "
            "AsyncAPI 3 document of every topic (keys, headers, payloads; topic names and "
            "partitions from the settings, --config and LIQMON_*), as docs/asyncapi.json."
        ),
    )
    parser.add_argument("message", choices=_MESSAGES)
    add_config_option(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import msgspec

    from monitor import schema

    if args.message == "asyncapi":
        from monitor.asyncapi import asyncapi_document

        document = asyncapi_document(settings_from_args(args).topics)
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(document), indent=2).decode())
        sys.stdout.write("\n")
        return 0
    types: dict[str, Any] = {
        "prices": schema.PriceTick,
        "fills": schema.LedgerEvent,
        "margin-events": schema.MarginEvent,
        "liqmon-state": schema.StateRecord,
        "instruments": list[schema.Instrument],
        "evaluate": schema.EvaluateRequest,
    }
    document = msgspec.json.schema(types[args.message])
    document = {"$schema": "https://json-schema.org/draft/2020-12/schema", **document}
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(document), indent=2).decode() + "\n")
    return 0
