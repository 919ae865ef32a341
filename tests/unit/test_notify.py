"""Request bodies and backoff of `liqmon notify` (monitor.notify), without Kafka or HTTP."""

from __future__ import annotations

import json

import pytest

from monitor.errors import ConfigError
from monitor.notify import RetryPolicy, Webhook, payload
from monitor.schema import MarginEvent

pytestmark = pytest.mark.unit

EVENT = MarginEvent(
    event_id="ev-1",
    type="liquidation",
    account="acct-1",
    state="liquidation",
    previous_state="margin_call",
    equity=900.0,
    initial_margin=1200.0,
    maintenance_margin=1000.0,
    margin_ratio=1000.0 / 900.0,
    trigger="price",
    trigger_ts=1_764_000_000_000,
    detected_ts=1_764_000_000_050,
)


def test_generic_json_carries_the_event_as_published_and_a_readable_line() -> None:
    body = json.loads(payload(EVENT, "json"))
    assert body["event_id"] == "ev-1"
    assert body["type"] == "liquidation"
    assert body["account"] == "acct-1"
    assert body["event"]["maintenance_margin"] == 1000.0
    assert body["event"]["previous_state"] == "margin_call"
    assert "ratio=1.111" in body["text"]


@pytest.mark.parametrize("fmt", ["slack", "teams"])
def test_chat_webhooks_get_only_a_text_field_naming_type_and_account(fmt: str) -> None:
    body = json.loads(payload(EVENT, fmt))  # type: ignore[arg-type]
    assert list(body) == ["text"]
    assert "liquidation" in body["text"]
    assert "acct-1" in body["text"]
    assert "equity=900.00" in body["text"]


def test_backoff_doubles_from_the_first_delay_up_to_the_cap() -> None:
    policy = RetryPolicy(first_delay_s=0.5, max_delay_s=4.0)
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    for attempt, ceiling in enumerate(ceilings, start=1):
        for _ in range(50):
            assert ceiling / 2 <= policy.delay(attempt) <= ceiling


@pytest.mark.parametrize("url", ["ftp://example.invalid/x", "not a url", "http:///path"])
def test_a_webhook_url_that_is_not_http_is_a_config_error_hiding_the_path(url: str) -> None:
    with pytest.raises(ConfigError, match="webhook URL must be http") as caught:
        Webhook(url, "json", RetryPolicy())
    assert "/x" not in str(caught.value)
