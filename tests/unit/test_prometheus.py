"""Our metrics and alert rules pass Prometheus's own checker (promtool, Debian's prometheus)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from monitor.metrics import Metrics

pytestmark = pytest.mark.unit

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool not found: `make test` installs Debian's prometheus package"
    return path


def run(args: list[str], stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, input=stdin, capture_output=True, timeout=60, check=False)


def test_every_metric_passes_promtool_check_metrics(promtool: str) -> None:
    metrics = Metrics()
    metrics.records_consumed.labels("fills").inc(3)
    metrics.events_published.labels("liquidation").inc()
    metrics.dlq_records.labels("undecodable").inc()
    metrics.prices_held.labels("stale").inc()
    metrics.cycle_duration.observe(0.002)
    metrics.tick_to_event_latency.observe(0.01)
    metrics.accounts.labels("healthy").set(10)
    metrics.consumer_lag.labels("fills", "0").set(0)
    metrics.price_age.labels("BTCUSDT").set(0.5)
    metrics.price_feed_age.set(0.5)
    metrics.initialise(
        topics=["prices", "fills"],
        ledger_types=["fill"],
        ignore_reasons=["duplicate"],
        event_types=["liquidation"],
        dlq_reasons=["ts_out_of_range"],
        hold_reasons=["out_of_band"],
        states=["healthy"],
    )
    result = run([promtool, "check", "metrics"], metrics.exposition())
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.decode() + result.stderr.decode() == ""


def test_alert_rules_are_valid(promtool: str) -> None:
    result = run([promtool, "check", "rules", str(PROMETHEUS_DIR / "rules.yml")])
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_alert_rules_fire_as_their_unit_tests_expect(promtool: str) -> None:
    result = run([promtool, "test", "rules", str(PROMETHEUS_DIR / "rules_test.yml")])
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


@pytest.mark.parametrize("config", ["prometheus.yml", "compose.yml"])
def test_scrape_config_is_valid(promtool: str, config: str) -> None:
    result = run([promtool, "check", "config", str(PROMETHEUS_DIR / config)])
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_every_alert_rule_has_a_unit_test_that_makes_it_fire() -> None:
    rules = (PROMETHEUS_DIR / "rules.yml").read_text()
    tests = (PROMETHEUS_DIR / "rules_test.yml").read_text()
    alerts = set(re.findall(r"^\s*- alert: (\w+)", rules, re.MULTILINE))
    # A firing case names the alert on its own line and lists expected alerts under it.
    firing = set(re.findall(r"alertname: (\w+)\n\s+exp_alerts:\n\s+- exp_labels", tests))
    assert alerts, "no alert rules found"
    assert sorted(alerts - firing) == []
