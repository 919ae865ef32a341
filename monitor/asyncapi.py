"""The AsyncAPI 3 document of liqmon's topics, generated so that it cannot drift.

Payload schemas come from the msgspec Structs of `monitor.schema` (the ones the monitor
decodes and encodes with), topic layouts (partitions, cleanup policy) from
`streams.topics.topic_specs`, header names from the code that writes them. `liqmon schema
asyncapi` prints it; docs/asyncapi.json is its output under the default settings, and a test
keeps the two equal and validates the document with the AsyncAPI parser.
"""

from __future__ import annotations

import typing
from typing import Any

import msgspec

from monitor import __version__, schema
from streams import dlq
from streams.settings import TopicSettings
from streams.topics import TopicSpec, topic_specs

__all__ = ["ASYNCAPI_VERSION", "asyncapi_document"]

ASYNCAPI_VERSION = "3.1.0"
_REF = "#/components/schemas/{name}"
_STRING = {"type": "string"}


def _message(
    name: str,
    title: str,
    summary: str,
    payload: str,
    key: dict[str, Any],
    headers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": name,
        "title": title,
        "summary": summary,
        "contentType": "application/json",
        "payload": {"$ref": _REF.format(name=payload)},
        "bindings": {"kafka": {"key": key, "bindingVersion": "0.5.0"}},
    }
    if headers is not None:
        message["headers"] = headers
    return message


def _channel(spec: TopicSpec, description: str, message: str) -> dict[str, Any]:
    return {
        "address": spec.name,
        "description": description,
        "messages": {message: {"$ref": f"#/components/messages/{message}"}},
        "bindings": {
            "kafka": {
                "topic": spec.name,
                "partitions": spec.partitions,
                "replicas": spec.replication_factor,
                "topicConfiguration": {"cleanup.policy": [spec.configs["cleanup.policy"]]},
                "bindingVersion": "0.5.0",
            }
        },
    }


def _operation(action: str, channel: str, message: str, summary: str) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "messages": [{"$ref": f"#/channels/{channel}/messages/{message}"}],
        "summary": summary,
    }


def _payload_schemas() -> dict[str, Any]:
    """JSON Schemas of every payload and what they share, keyed by component name.

    Tagged unions become ``anyOf`` with AsyncAPI's ``discriminator`` (the tag field's
    name; msgspec writes OpenAPI's object form).
    """
    roots = (
        schema.PriceTick,
        schema.LedgerEvent,
        schema.MarginEvent,
        schema.StateRecord,
        schema.SolvencyReport,
        schema.MarginParameters,
    )
    (_, ledger, _, state, *_), components = msgspec.json.schema_components(roots, ref_template=_REF)
    for name, union in (("LedgerEvent", ledger), ("StateRecord", state)):
        components[name] = {**union, "discriminator": union["discriminator"]["propertyName"]}
    components["DeadLetter"] = {
        "description": "The rejected record's value, byte for byte (possibly not JSON)."
    }
    return components


def asyncapi_document(topics: TopicSettings | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the topics named by ``topics`` (default names)."""
    topics = topics or TopicSettings()
    specs = {spec.name: spec for spec in topic_specs(topics)}
    event_types = list(typing.get_args(schema.MarginEventType))
    dlq_headers = {
        "type": "object",
        "description": "The original record's headers are kept; these are added.",
        "properties": {
            dlq.DLQ_TOPIC: {**_STRING, "description": "topic the record was read from"},
            dlq.DLQ_PARTITION: {**_STRING, "description": "its partition (decimal)"},
            dlq.DLQ_OFFSET: {**_STRING, "description": "its offset (decimal)"},
            dlq.DLQ_TIMESTAMP: {**_STRING, "description": "its timestamp, ms (decimal)"},
            dlq.DLQ_REASON: {**_STRING, "description": "why it was rejected (a short code)"},
            dlq.DLQ_DETAIL: {
                **_STRING,
                "description": f"the error, cut to {dlq.MAX_DETAIL_BYTES} bytes",
            },
        },
        "required": [
            dlq.DLQ_TOPIC,
            dlq.DLQ_PARTITION,
            dlq.DLQ_OFFSET,
            dlq.DLQ_TIMESTAMP,
            dlq.DLQ_REASON,
            dlq.DLQ_DETAIL,
        ],
    }
    messages = {
        "PriceTick": _message(
            "PriceTick",
            "Mark price tick",
            "The newest mark price of one instrument; the topic is a table (compacted).",
            "PriceTick",
            {**_STRING, "description": "the instrument's symbol"},
        ),
        "LedgerEvent": _message(
            "LedgerEvent",
            "Ledger event",
            "A fill, transfer, funding payment, margin setting or isolated-margin change, "
            "tagged by `type`; each carries an id that makes it idempotent.",
            "LedgerEvent",
            {**_STRING, "description": "the account id"},
        ),
        "MarginEvent": _message(
            "MarginEvent",
            "Margin event",
            "One margin-state transition of an account or isolated position; `event_id` is "
            "deterministic, so duplicates after a restart can be dropped by id.",
            "MarginEvent",
            {**_STRING, "description": "the account id"},
            {
                "type": "object",
                "properties": {
                    "type": {
                        **_STRING,
                        "enum": event_types,
                        "description": "the event's type, to filter without decoding",
                    }
                },
                "required": ["type"],
            },
        ),
        "MarginParameters": _message(
            "MarginParameters",
            "Dynamic-margin parameter change",
            "A change of an underlying's dynamic-margin rate scale, published before the "
            "transitions it causes (docs/dynamic-margin.md).",
            "MarginParameters",
            {**_STRING, "pattern": "^parameters:.+$", "description": "`parameters:<underlying>`"},
            {
                "type": "object",
                "properties": {"type": {**_STRING, "const": "margin_parameters"}},
                "required": ["type"],
            },
        ),
        "StateRecord": _message(
            "StateRecord",
            "Changelog record",
            "The monitor's own changelog: an account's unit states or a ledger checkpoint.",
            "StateRecord",
            {
                **_STRING,
                "pattern": "^(account:.+|checkpoint:.+:[0-9]+)$",
                "description": "`account:<id>` or `checkpoint:<ledger topic>:<partition>`",
            },
        ),
        "SolvencyReport": _message(
            "SolvencyReport",
            "Solvency report",
            "The book under named stress scenarios: bad debt, fund coverage, Cover-2 and the "
            "auto-deleveraging queue (docs/solvency.md), every solvency.interval_s.",
            "SolvencyReport",
            {**_STRING, "description": "the instance (service.instance_id or group_id)"},
        ),
        "DeadLetter": _message(
            "DeadLetter",
            "Dead letter",
            "Input the monitor could not use, with the original key, value and headers.",
            "DeadLetter",
            {"description": "the original record's key, unchanged"},
            dlq_headers,
        ),
    }
    channels = {
        "prices": _channel(
            specs[topics.prices], "Mark prices, key = symbol (compacted).", "PriceTick"
        ),
        "fills": _channel(
            specs[topics.fills],
            "The account ledger, key = account: one account's events in one partition, in order.",
            "LedgerEvent",
        ),
        "marginEvents": _channel(
            specs[topics.margin_events],
            "Margin calls, liquidations and bankruptcies, key = account (docs/events.md).",
            "MarginEvent",
        ),
        "state": _channel(
            specs[topics.state], "liqmon's changelog (compacted); internal.", "StateRecord"
        ),
        "deadLetters": _channel(
            specs[topics.dlq], "Rejected input, with why (docs/operations.md).", "DeadLetter"
        ),
        "solvency": _channel(
            specs[topics.solvency],
            "Solvency reports, key = instance (docs/solvency.md).",
            "SolvencyReport",
        ),
    }
    channels["marginEvents"]["messages"]["MarginParameters"] = {
        "$ref": "#/components/messages/MarginParameters"
    }
    operations = {
        "readPrices": _operation("receive", "prices", "PriceTick", "liqmon reads every price"),
        "readLedger": _operation(
            "receive", "fills", "LedgerEvent", "liqmon instances split the ledger partitions"
        ),
        "publishMarginEvents": _operation(
            "send", "marginEvents", "MarginEvent", "one event per state transition"
        ),
        "publishMarginParameters": _operation(
            "send",
            "marginEvents",
            "MarginParameters",
            "one record per change of a dynamic-margin scale",
        ),
        "writeChangelog": _operation(
            "send", "state", "StateRecord", "states and checkpoints, before offsets commit"
        ),
        "deadLetter": _operation(
            "send", "deadLetters", "DeadLetter", "bad input, kept byte for byte"
        ),
        "publishSolvency": _operation(
            "send", "solvency", "SolvencyReport", "the book under stress, periodically"
        ),
    }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "liqmon",
            "version": __version__,
            "description": (
                "Streaming liquidation monitor: price ticks and account ledger events in, "
                "margin events out. Generated by `liqmon schema asyncapi` from "
                "monitor/schema/ and the topic settings; do not edit by hand."
            ),
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "Set by kafka.bootstrap_servers (docs/configuration.md).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": _payload_schemas()},
    }
