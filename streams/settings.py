"""How to reach Kafka and which topics to use, and the one place that turns that into
aiokafka client arguments.

These Structs are sections of liqmon's configuration (`monitor.config.Settings` composes
them); they live here because the streams layer must not import the monitor. Checks that
span fields raise ``ValueError("<field>: <problem>")`` from ``__post_init__``; msgspec
reports those with the section's path, so a bad file names the setting at fault.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from streams.errors import StreamsError

__all__ = ["KafkaSettings", "TopicSettings", "client_kwargs"]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
# Kafka's own rule for topic names (legal characters, at most 249 of them).
TopicName = Annotated[str, msgspec.Meta(pattern=r"^[a-zA-Z0-9._-]{1,249}$")]
Count = Annotated[int, msgspec.Meta(ge=1)]

_MASK = "***"


class KafkaSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Connection to the Kafka cluster; every producer, consumer and admin client uses it."""

    #: Comma-separated host:port list of brokers to bootstrap from.
    bootstrap_servers: Annotated[str, msgspec.Meta(min_length=1)] = "127.0.0.1:9092"
    #: Client id sent to the brokers (shows up in their logs and quotas).
    client_id: Annotated[str, msgspec.Meta(min_length=1)] = "liqmon"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    #: Required with SASL_PLAINTEXT / SASL_SSL.
    sasl_mechanism: SaslMechanism | None = None
    sasl_plain_username: str | None = None
    #: Never logged nor shown by repr().
    sasl_plain_password: str | None = None
    #: CA bundle (PEM) to verify the brokers with; the system CAs when unset.
    ssl_cafile: str | None = None
    #: Client certificate (PEM) for mutual TLS; may hold the key too.
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    request_timeout_ms: Count = 30_000

    def __post_init__(self) -> None:
        uses_sasl = self.security_protocol.startswith("SASL_")
        uses_tls = self.security_protocol.endswith("SSL")
        if uses_sasl:
            if self.sasl_mechanism is None:
                raise ValueError(f"sasl_mechanism: required with {self.security_protocol}")
            for name in ("sasl_plain_username", "sasl_plain_password"):
                if getattr(self, name) is None:
                    raise ValueError(f"{name}: required with {self.security_protocol}")
        elif self.sasl_mechanism is not None:
            raise ValueError(
                f"sasl_mechanism: set, but security_protocol {self.security_protocol} "
                "does not use SASL"
            )
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is None:
                continue
            if not uses_tls:
                raise ValueError(
                    f"{name}: set, but security_protocol {self.security_protocol} does not use TLS"
                )
            if not Path(path).is_file():
                raise ValueError(f"{name}: no such file {path}")
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise ValueError("ssl_keyfile: needs ssl_certfile as well")

    def __repr__(self) -> str:
        shown = msgspec.structs.asdict(self)
        if shown["sasl_plain_password"] is not None:
            shown["sasl_plain_password"] = _MASK
        return "KafkaSettings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    __str__ = __repr__


class TopicSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Names and sizes of liqmon's topics (DESIGN.md, "Data flow").

    `margin_events` and `state` get as many partitions as `fills`: all three are keyed by
    account, and an instance restores the state of exactly the fills partitions it owns.
    """

    #: Newest mark price per instrument (compacted table, key = instrument).
    prices: TopicName = "prices"
    #: Account ledger: fills, transfers, funding (key = account).
    fills: TopicName = "fills"
    #: Margin calls and liquidations out (key = account).
    margin_events: TopicName = "margin-events"
    #: Compacted changelog of per-account state (key = account).
    state: TopicName = "liqmon-state"
    #: Rejected input with the reason in headers.
    dlq: TopicName = "liqmon-dlq"
    #: Periodic solvency reports: book-wide stress, fund coverage, ADL queue (key = instance).
    solvency: TopicName = "liqmon-solvency"
    fills_partitions: Count = 6
    prices_partitions: Count = 1
    replication_factor: Count = 1

    def __post_init__(self) -> None:
        owner: dict[str, str] = {}
        for field, name in zip(_TOPIC_FIELDS, self.names(), strict=True):
            if name in owner:
                raise ValueError(f"{field}: {name!r} is already the {owner[name]} topic")
            owner[name] = field

    def names(self) -> list[str]:
        """All topic names, in the order prices, fills, margin_events, state, dlq, solvency."""
        return [self.prices, self.fills, self.margin_events, self.state, self.dlq, self.solvency]

    def prefixed(self, prefix: str) -> TopicSettings:
        """The same topics with `prefix` before every name (tests, several tenants)."""
        fields = msgspec.structs.asdict(self)
        fields.update({field: prefix + fields[field] for field in _TOPIC_FIELDS})
        return msgspec.convert(fields, TopicSettings)


_TOPIC_FIELDS = ("prices", "fills", "margin_events", "state", "dlq", "solvency")


def client_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client (producer, consumer, admin) from `kafka`.

    Callers add their own role-specific arguments (group_id, acks, ...) on top; this is the
    only place that knows how security settings map onto aiokafka.
    """
    kwargs: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "client_id": kafka.client_id,
        "request_timeout_ms": kafka.request_timeout_ms,
        "security_protocol": kafka.security_protocol,
    }
    if kafka.security_protocol.startswith("SASL_"):
        kwargs["sasl_mechanism"] = kafka.sasl_mechanism
        kwargs["sasl_plain_username"] = kafka.sasl_plain_username
        kwargs["sasl_plain_password"] = kafka.sasl_plain_password
    if kafka.security_protocol.endswith("SSL"):
        kwargs["ssl_context"] = _ssl_context(kafka)
    return kwargs


def _ssl_context(kafka: KafkaSettings) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=kafka.ssl_cafile)
        if kafka.ssl_certfile is not None:
            context.load_cert_chain(kafka.ssl_certfile, keyfile=kafka.ssl_keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise StreamsError(
            f"kafka TLS settings: cannot load certificates ({exc}); check kafka.ssl_cafile, "
            "kafka.ssl_certfile and kafka.ssl_keyfile"
        ) from exc
    return context
