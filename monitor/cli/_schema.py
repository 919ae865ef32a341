"""`liqmon schema`: JSON Schema of every message, generated from monitor.schema."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register"]

_MESSAGES = ("prices", "fills", "margin-events", "liqmon-state", "instruments", "evaluate")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "schema",
        help="print the JSON Schema of a topic's messages or an input file",
        description=(
            "Print the JSON Schema (2020-12) of one message kind, generated from the same "
            "msgspec Structs the monitor decodes with: prices (PriceTick), fills (the ledger "
            "union, tagged by type), margin-events (MarginEvent), liqmon-state (the changelog), "
            "instruments (the --instruments file), evaluate (liqmon evaluate input)."
        ),
    )
    parser.add_argument("message", choices=_MESSAGES)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import msgspec

    from monitor import schema

    types: dict[str, Any] = {
        "prices": schema.PriceTick,
        "fills": schema.LedgerEvent,
        "margin-events": schema.MarginEvent,
        "liqmon-state": schema.StateRecord,
        "instruments": list[schema.Instrument],
        "evaluate": schema.EvaluateRequest,
    }
    document = _without_nan_defaults(msgspec.json.schema(types[args.message]))
    document = {"$schema": "https://json-schema.org/draft/2020-12/schema", **document}
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(document), indent=2).decode() + "\n")
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
