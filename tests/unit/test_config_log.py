"""Log output: JSON lines that never carry a secret, for liqmon's and libraries' records."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from monitor.log import LogSettings, configure_logging
from streams.settings import KafkaSettings


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    level = root.level
    buffer = io.StringIO()
    configure_logging(LogSettings(level="info", format="json"), stream=buffer)
    yield buffer
    for handler in [h for h in root.handlers if h.get_name() == "liqmon"]:
        root.removeHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()


def _records(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_each_event_is_one_json_object_with_level_logger_and_time(
    log_lines: io.StringIO,
) -> None:
    structlog.get_logger("liqmon.test").info("cycle done", events=3)
    (record,) = _records(log_lines)
    assert record["event"] == "cycle done"
    assert record["events"] == 3
    assert record["level"] == "info"
    assert record["logger"] == "liqmon.test"
    assert str(record["timestamp"]).endswith("Z")


def test_password_fields_are_masked(log_lines: io.StringIO) -> None:
    structlog.get_logger("liqmon.test").info("login", sasl_plain_password="hunter2", user="u")
    assert "hunter2" not in log_lines.getvalue()
    (record,) = _records(log_lines)
    assert record["sasl_plain_password"] == "***"
    assert record["user"] == "u"


def test_settings_logged_whole_have_their_password_masked(log_lines: io.StringIO) -> None:
    kafka = KafkaSettings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_plain_username="u",
        sasl_plain_password="hunter2",
    )
    structlog.get_logger("liqmon.test").info("connecting", kafka=kafka)
    assert "hunter2" not in log_lines.getvalue()
    (record,) = _records(log_lines)
    assert record["kafka"]["sasl_plain_password"] == "***"  # type: ignore[index]
    assert record["kafka"]["sasl_plain_username"] == "u"  # type: ignore[index]


def test_standard_library_records_come_out_as_json_too(log_lines: io.StringIO) -> None:
    logging.getLogger("aiokafka.consumer").warning("heartbeat failed for %s", "g1")
    (record,) = _records(log_lines)
    assert record["event"] == "heartbeat failed for g1"
    assert record["level"] == "warning"
    assert record["logger"] == "aiokafka.consumer"


def test_events_below_the_level_are_dropped(log_lines: io.StringIO) -> None:
    structlog.get_logger("liqmon.test").debug("noise")
    logging.getLogger("aiokafka").debug("noise")
    assert log_lines.getvalue() == ""
