"""Kafka and topic settings: what aiokafka receives, what the topics look like."""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import msgspec
import pytest

from streams.broker import KAFKA_VERSION
from streams.settings import KafkaSettings, TopicSettings, client_kwargs
from streams.topics import topic_specs

ROOT = Path(__file__).resolve().parents[2]


def test_plaintext_clients_get_address_and_id_but_no_credentials() -> None:
    kwargs = client_kwargs(KafkaSettings(bootstrap_servers="k1:9092,k2:9092", client_id="c"))
    assert kwargs == {
        "bootstrap_servers": "k1:9092,k2:9092",
        "client_id": "c",
        "request_timeout_ms": 30_000,
        "security_protocol": "PLAINTEXT",
    }


def test_sasl_over_tls_passes_credentials_and_an_ssl_context() -> None:
    kafka = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="monitor",
        sasl_plain_password="s3cret",
    )
    kwargs = client_kwargs(kafka)
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "monitor"
    assert kwargs["sasl_plain_password"] == "s3cret"
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert kwargs["ssl_context"].verify_mode == ssl.CERT_REQUIRED


def test_sasl_without_tls_gets_no_ssl_context() -> None:
    kafka = KafkaSettings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_plain_username="u",
        sasl_plain_password="p",
    )
    assert "ssl_context" not in client_kwargs(kafka)


def test_the_password_never_shows_in_repr_or_str() -> None:
    kafka = KafkaSettings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_plain_username="u",
        sasl_plain_password="hunter2",
    )
    assert "hunter2" not in repr(kafka)
    assert "hunter2" not in str(kafka)
    assert "sasl_plain_password='***'" in repr(kafka)


def test_tls_files_with_a_plaintext_protocol_are_refused(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    with pytest.raises(msgspec.ValidationError, match="ssl_cafile: set, but security_protocol"):
        msgspec.convert({"ssl_cafile": str(ca)}, KafkaSettings)


def test_prefixed_topics_keep_sizes_and_prefix_every_name() -> None:
    topics = TopicSettings(fills_partitions=4).prefixed("run7-")
    assert topics.names() == [
        "run7-prices",
        "run7-fills",
        "run7-margin-events",
        "run7-liqmon-state",
        "run7-liqmon-dlq",
        "run7-liqmon-solvency",
    ]
    assert topics.fills_partitions == 4


def test_prices_and_state_are_compacted_and_the_rest_are_not() -> None:
    policies = {spec.name: spec.configs["cleanup.policy"] for spec in topic_specs(TopicSettings())}
    assert policies == {
        "prices": "compact",
        "fills": "delete",
        "margin-events": "delete",
        "liqmon-state": "compact",
        "liqmon-dlq": "delete",
        "liqmon-solvency": "delete",
    }


def test_account_keyed_topics_share_the_fills_partition_count() -> None:
    partitions = {
        spec.name: spec.partitions for spec in topic_specs(TopicSettings(fills_partitions=9))
    }
    assert partitions == {
        "prices": 1,
        "fills": 9,
        "margin-events": 9,
        "liqmon-state": 9,
        "liqmon-dlq": 1,
        "liqmon-solvency": 1,
    }


def test_the_broker_runs_the_kafka_version_the_maven_project_fetches() -> None:
    pom = (ROOT / "deploy" / "kafka" / "pom.xml").read_text()
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert match is not None
    assert match.group(1) == KAFKA_VERSION
