"""The dashboard and the alert rules on a real Prometheus, alerts routed by a real Alertmanager.

One scenario for the module: `liqmon run` (a subprocess, as users start it) watches a short
simulated crash; then a tick far out of the price band is held by the guard, a deposit is
repeated (ignored as a duplicate) and two undecodable ledger records go to the DLQ; a second
scrape target is an instance that is not running. A real `prometheus` (Debian package)
scrapes every second and evaluates deploy/prometheus/rules.yml, with every `for:` shortened
to 0s (promtool's unit tests, rules_test.yml, cover the durations); it sends its alerts to a
real `prometheus-alertmanager` running deploy/alertmanager/alertmanager.yml, which routes them
to a webhook receiver of this test. Then every PromQL expression of deploy/grafana/liqmon.json
and of every rule goes through the HTTP API.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import shutil
import socket
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from monitor.schema import PriceTick, Transfer
from streams import OutboundRecord, Producer
from streams.settings import KafkaSettings, TopicSettings
from streams.topics import delete_topics, ensure_topics
from tests.integration.webhook_receiver import WebhookReceiver
from tests.unit.test_grafana_dashboard import QUERIES

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "rules.yml"
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
EXAMPLE_INSTRUMENTS = REPO / "monitor" / "examples" / "instruments.json"
ALERT_NAMES = re.findall(r"^\s*- alert: (\w+)$", RULES.read_text(), re.MULTILINE)
# Grafana's variables, as this scenario needs them: every instance, windows spanning the run.
GRAFANA_VARIABLES = {
    "$__rate_interval": "2m",
    "$__range": "5m",
    "${instance}": ".*",
    "$instance": ".*",
}
# What the scenario must make fire, and what must stay quiet.
MUST_FIRE = frozenset({"LiqmonDown", "LiqmonDeadLetters", "LiqmonPricesHeld"})
MUST_NOT_FIRE = frozenset(
    {
        "LiqmonSweepMismatch",
        "LiqmonConsumerLagHigh",
        "LiqmonNotReady",
        "LiqmonProcessingErrors",
        "LiqmonStateRecordsDropped",
        "LiqmonLedgerNotApplied",
    }
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(f"{names[0]} not found: `make test` installs it (deploy/setup-system.sh)")


async def http_json(url: str, params: dict[str, str] | None = None) -> Any:
    if params:
        url += "?" + urllib.parse.urlencode(params)

    def get() -> Any:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)

    return await asyncio.to_thread(get)


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f}s"
        await asyncio.sleep(0.25)


@dataclass
class Stack:
    """The running scenario: Prometheus's address and what the webhook received."""

    prometheus: str
    liqmon_instance: str
    dead_instance: str
    webhook: WebhookReceiver
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)
    #: A moment when liqmon was ready, scraped a few times, and had seen no input yet.
    idle_at: float = 0.0

    async def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        answer = await http_json(f"{self.prometheus}/api/v1/query", params)
        assert answer["status"] == "success", (expr, answer)
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    async def firing(self) -> set[str]:
        answer = await http_json(f"{self.prometheus}/api/v1/alerts")
        return {
            alert["labels"]["alertname"]
            for alert in answer["data"]["alerts"]
            if alert["state"] == "firing"
        }


def _prometheus_config(liqmon: str, dead: str, alertmanager: str) -> str:
    # JSON is YAML: no YAML library needed.
    return json.dumps(
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["rules.yml"],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
            "scrape_configs": [
                {"job_name": "liqmon", "static_configs": [{"targets": [liqmon, dead]}]}
            ],
        }
    )


def _alertmanager_config(webhook: str) -> str:
    """deploy/alertmanager/alertmanager.yml (what compose runs), sending to ``webhook``."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    for receiver in config["receivers"]:
        for target in receiver["webhook_configs"]:
            target["url"] = webhook
    return json.dumps(config)


async def _spawn(
    stack: Stack, *args: str, env: dict[str, str] | None = None, log: Path
) -> asyncio.subprocess.Process:
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            *args, env=env, stdout=sink, stderr=asyncio.subprocess.STDOUT
        )
    stack.processes.append(process)
    return process


@pytest.fixture(scope="module")
async def stack(
    kafka_settings: KafkaSettings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    work = tmp_path_factory.mktemp("prometheus-live")
    topics = TopicSettings(fills_partitions=3).prefixed(f"t-prom-{uuid.uuid4().hex[:10]}-")
    report = await ensure_topics(kafka_settings, topics)
    assert report.ok, [problem.describe() for problem in report.problems]
    liqmon_port, dead_port, prometheus_port, alertmanager_port = (free_port() for _ in range(4))
    env = {
        **os.environ,
        "LIQMON_KAFKA__BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "LIQMON_TOPICS__PRICES": topics.prices,
        "LIQMON_TOPICS__FILLS": topics.fills,
        "LIQMON_TOPICS__MARGIN_EVENTS": topics.margin_events,
        "LIQMON_TOPICS__STATE": topics.state,
        "LIQMON_TOPICS__DLQ": topics.dlq,
        "LIQMON_TOPICS__SOLVENCY": topics.solvency,
        "LIQMON_SERVICE__GROUP_ID": f"g-prom-{uuid.uuid4().hex[:10]}",
        "LIQMON_SERVICE__HTTP_PORT": str(liqmon_port),
        "LIQMON_LOG__FORMAT": "json",
        # One-second bars and a short warm-up, so the volatility panel has figures within
        # the scenario's few seconds of event time.
        "LIQMON_DYNAMIC__BAR_S": "1",
        "LIQMON_DYNAMIC__EWMA_WARMUP": "2",
        # Snapshots within seconds too, for the snapshot panel's per-partition age.
        "LIQMON_SERVICE__SNAPSHOT_INTERVAL_S": "1",
    }
    (work / "rules.yml").write_text(
        re.sub(r"^(\s+)for: \S+$", r"\1for: 0s", RULES.read_text(), flags=re.MULTILINE)
    )
    async with WebhookReceiver() as webhook:
        stack = Stack(
            prometheus=f"http://127.0.0.1:{prometheus_port}",
            liqmon_instance=f"127.0.0.1:{liqmon_port}",
            dead_instance=f"127.0.0.1:{dead_port}",
            webhook=webhook,
        )
        (work / "alertmanager.yml").write_text(_alertmanager_config(webhook.url))
        (work / "prometheus.yml").write_text(
            _prometheus_config(
                stack.liqmon_instance, stack.dead_instance, f"127.0.0.1:{alertmanager_port}"
            )
        )
        try:
            await _run_scenario(stack, work, env, topics, kafka_settings, alertmanager_port)
            yield stack
        finally:
            for process in stack.processes:
                if process.returncode is None:
                    process.terminate()
            for process in stack.processes:
                try:
                    await asyncio.wait_for(process.wait(), 15)
                except TimeoutError:
                    process.kill()
                    await process.wait()
            await delete_topics(kafka_settings, topics.names())


async def _run_scenario(
    stack: Stack,
    work: Path,
    env: dict[str, str],
    topics: TopicSettings,
    kafka: KafkaSettings,
    alertmanager_port: int,
) -> None:
    await _spawn(
        stack,
        binary("prometheus-alertmanager", "alertmanager"),
        f"--config.file={work / 'alertmanager.yml'}",
        f"--storage.path={work / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{alertmanager_port}",
        "--cluster.listen-address=",
        log=work / "alertmanager.log",
    )
    liqmon = await _spawn(
        stack,
        sys.executable,
        "-m",
        "monitor",
        "run",
        "--instruments",
        str(EXAMPLE_INSTRUMENTS),
        env=env,
        log=work / "liqmon.log",
    )
    await _spawn(
        stack,
        binary("prometheus"),
        f"--config.file={work / 'prometheus.yml'}",
        f"--storage.tsdb.path={work / 'prometheus-data'}",
        f"--web.listen-address={stack.prometheus.removeprefix('http://')}",
        log=work / "prometheus.log",
    )

    async def liqmon_ready() -> bool:
        assert liqmon.returncode is None, (work / "liqmon.log").read_text()[-2000:]
        result = await _query_or_empty(stack, "liqmon_ready == 1")
        return bool(result)

    await until(liqmon_ready, "Prometheus scrapes a ready liqmon")

    async def scraped_idle() -> bool:
        result = await _query_or_empty(
            stack, f'count_over_time(up{{instance="{stack.liqmon_instance}"}}[1m]) >= 4'
        )
        return bool(result)

    await until(scraped_idle, "four scrapes of the idle liqmon")
    stack.idle_at = time.time()
    simulate = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "simulate",
        "--instruments",
        str(EXAMPLE_INSTRUMENTS),
        "--accounts",
        "300",
        "--rate",
        "400",
        "--scenario",
        "crash",
        "--crash-at",
        "1",
        "--crash-seconds",
        "1",
        "--duration",
        "4",
        "--quiet",
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(simulate.communicate(), 120)
    assert simulate.returncode == 0, stderr.decode()[-2000:]

    # A tick a thousand times the price is out of band: held, never used. A deposit sent
    # twice is applied once. Two bad records, the second once Prometheus has seen the first:
    # a counter child is born at 1 unless initialised, and rate() only sees increases after.
    now_ms = time.time_ns() // 1_000_000
    jump = PriceTick(symbol="BTCUSDT", mark_price=100_000_000.0, ts=now_ms)
    deposit = Transfer(transfer_id="dup-1", account="dup-acct", asset="USDT", amount=5.0, ts=now_ms)
    async with Producer(kafka) as producer:
        await producer.send_batch(
            [
                OutboundRecord(topics.prices, b"BTCUSDT", msgspec.json.encode(jump)),
                OutboundRecord(topics.fills, b"dup-acct", msgspec.json.encode(deposit)),
                OutboundRecord(topics.fills, b"dup-acct", msgspec.json.encode(deposit)),
                OutboundRecord(topics.fills, b"acct", b"not json"),
            ]
        )

        async def dlq_seen() -> bool:
            return bool(await _query_or_empty(stack, "liqmon_dlq_records_total > 0"))

        await until(dlq_seen, "the first dead letter is scraped")
        await producer.send_batch([OutboundRecord(topics.fills, b"acct", b"not json either")])

    async def settled() -> bool:
        firing = await stack.firing()
        published = await _query_or_empty(stack, "sum(liqmon_events_published_total) > 0")
        both_bad = await _query_or_empty(stack, "sum(liqmon_dlq_records_total) >= 2")
        ignored = await _query_or_empty(stack, "sum(liqmon_ledger_events_ignored_total) >= 1")
        return firing >= MUST_FIRE and bool(published and both_bad and ignored)

    await until(settled, "events published and the expected alerts firing")


async def _query_or_empty(stack: Stack, expr: str) -> list[dict[str, Any]]:
    """The query's result; empty while Prometheus is not yet up."""
    try:
        return await stack.query(expr)
    except OSError:
        return []


def _dashboard_expr(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def _values(result: list[dict[str, Any]]) -> list[float]:
    return [float(item["value"][1]) for item in result]


@pytest.mark.parametrize("query", QUERIES, ids=str)
async def test_every_dashboard_query_returns_numbers_on_prometheus(
    stack: Stack, query: Any
) -> None:
    result = await stack.query(_dashboard_expr(query.expr))
    assert result, f"{query} returned nothing: {query.expr}"
    assert not any(math.isnan(value) for value in _values(result)), (query.expr, result)


@pytest.mark.parametrize("query", QUERIES, ids=str)
async def test_no_dashboard_query_shows_nan_while_liqmon_is_idle(stack: Stack, query: Any) -> None:
    result = await stack.query(_dashboard_expr(query.expr), at=stack.idle_at)
    assert not any(math.isnan(value) for value in _values(result)), (query.expr, result)


async def test_an_idle_latency_histogram_is_nan_unless_the_panel_drops_it(stack: Stack) -> None:
    buckets = "rate(liqmon_tick_to_event_latency_seconds_bucket[1m])"
    raw = f"histogram_quantile(0.99, sum by (le) ({buckets}))"
    (idle,) = await stack.query(raw, at=stack.idle_at)
    assert math.isnan(float(idle["value"][1]))


async def test_every_rule_is_loaded_and_evaluates_without_error(stack: Stack) -> None:
    answer = await http_json(f"{stack.prometheus}/api/v1/rules")
    rules = [rule for group in answer["data"]["groups"] for rule in group["rules"]]
    assert sorted(rule["name"] for rule in rules) == sorted(ALERT_NAMES)
    for rule in rules:
        assert rule["health"] == "ok", rule
        await stack.query(rule["query"])


async def test_a_stopped_instance_and_dead_letters_fire_their_alerts_and_nothing_false(
    stack: Stack,
) -> None:
    (dead_letters,) = await stack.query("sum(liqmon_dlq_records_total)")
    assert float(dead_letters["value"][1]) == 2
    (held,) = await stack.query('liqmon_price_holds_total{reason="out_of_band"}')
    assert float(held["value"][1]) == 1
    (ignored,) = await stack.query("sum(liqmon_ledger_events_ignored_total)")
    assert float(ignored["value"][1]) == 1
    firing = await stack.firing()
    assert firing >= MUST_FIRE
    assert not firing & MUST_NOT_FIRE
    down = await stack.query('ALERTS{alertname="LiqmonDown", alertstate="firing"}')
    assert {item["metric"]["instance"] for item in down} == {stack.dead_instance}


async def test_alertmanager_delivers_a_firing_alert_to_the_webhook(stack: Stack) -> None:
    def delivered(bodies: list[Any]) -> bool:
        names = {
            alert["labels"]["alertname"]
            for body in bodies
            for alert in body["alerts"]
            if alert["status"] == "firing"
        }
        return names >= MUST_FIRE

    await stack.webhook.wait_for(delivered, f"firing {sorted(MUST_FIRE)} from Alertmanager")
    body = next(b for b in stack.webhook.received if b["alerts"])
    assert body["receiver"] == "webhook"
    alert = body["alerts"][0]
    assert alert["labels"]["severity"] in {"page", "warn"}
    assert alert["annotations"]["summary"]


async def test_build_and_process_metrics_are_scraped(stack: Stack) -> None:
    (build,) = await stack.query(f'liqmon_build_info{{instance="{stack.liqmon_instance}"}}')
    assert build["metric"]["kafka_client"] == "aiokafka"
    from monitor import __version__

    assert build["metric"]["version"] == __version__
    (rss,) = await stack.query(
        f'process_resident_memory_bytes{{instance="{stack.liqmon_instance}"}}'
    )
    assert float(rss["value"][1]) > 10_000_000
