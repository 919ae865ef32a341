"""The Grafana dashboard reads only series liqmon exports, by labels they carry, in valid PromQL.

The dashboard is hand-edited JSON; these checks keep it honest as metrics are renamed or
added: every query names real series and labels, every liqmon metric is shown somewhere,
and Prometheus's own checker (promtool, Debian's prometheus) parses every expression.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import Histogram
from prometheus_client.metrics import MetricWrapperBase

from monitor.metrics import Metrics
from monitor.schema import AccountState

pytestmark = pytest.mark.unit

DASHBOARD_PATH = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "liqmon.json"
DATASOURCE_UID = "${datasource}"

# One example label set per labelled metric: a labelled metric shows no sample (so neither
# its series names nor its labels) until a child exists. A new labelled metric needs one here.
EXAMPLE_LABELS: dict[str, dict[str, str]] = {
    "liqmon_records_consumed": {"topic": "fills"},
    "liqmon_ledger_events_applied": {"type": "fill"},
    "liqmon_ledger_events_ignored": {"reason": "duplicate"},
    "liqmon_events_published": {"type": "liquidation"},
    "liqmon_dlq_records": {"reason": "undecodable"},
    "liqmon_price_holds": {"reason": "stale"},
    "liqmon_replay_records_rejected": {"reason": "unknown_instrument"},
    "liqmon_bad_debt": {"underlying": "BTC"},
    "liqmon_liquidation_exposure": {"underlying": "BTC"},
    "liqmon_open_interest": {"symbol": "BTCUSDT"},
    "liqmon_accounts": {"state": "healthy"},
    "liqmon_open_positions": {"kind": "option"},
    "liqmon_consumer_lag_records": {"topic": "fills", "partition": "0"},
    "liqmon_price_age_seconds": {"symbol": "BTCUSDT"},
    "liqmon_stress_bad_debt": {"scenario": "BTC -30%"},
    "liqmon_stress_bankrupt_accounts": {"scenario": "BTC -30%"},
    "liqmon_adl_shortfall": {"symbol": "BTCUSDT", "side": "short"},
    "liqmon_volatility": {"underlying": "BTCUSDT"},
    "liqmon_margin_scale": {"underlying": "BTCUSDT"},
    "liqmon_margin_parameter_changes": {"underlying": "BTCUSDT"},
    "liqmon_snapshot_timestamp_seconds": {"partition": "0"},
}
# Prometheus attaches these to every scraped series; `up` is its own per-target series.
TARGET_LABELS = frozenset({"instance", "job"})
SCRAPE_SERIES: dict[str, frozenset[str]] = {"up": TARGET_LABELS}
# Grafana's variables as promtool should see them: a duration, and a regex matching anything.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__range": "1h",
    "${instance}": ".*",
    "$instance": ".*",
}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_SERIES = re.compile(r"\b(liqmon_\w+|process_\w+|up)\b")
_SELECTOR = re.compile(r"\b(liqmon_\w+|process_\w+|up)\s*\{((?:\"(?:[^\"\\]|\\.)*\"|[^}\"])*)\}")
_MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)\s*(\"(?:[^\"\\]|\\.)*\")")
_GROUPING = re.compile(r"\bby\s*\(([^)]*)\)")


class Query(typing.NamedTuple):
    panel: str
    ref_id: str
    expr: str

    def __str__(self) -> str:
        return f"{self.panel}/{self.ref_id}"


def load_dashboard() -> dict[str, Any]:
    with DASHBOARD_PATH.open(encoding="utf-8") as file:
        dashboard: dict[str, Any] = json.load(file)
    return dashboard


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


DASHBOARD = load_dashboard()
PANELS = list(all_panels(DASHBOARD["panels"]))
QUERIES = [
    Query(panel["title"], target["refId"], target["expr"])
    for panel in PANELS
    for target in panel.get("targets", [])
]


def series_names(expr: str) -> set[str]:
    """The series an expression selects: liqmon's and process identifiers and `up`, outside
    strings."""
    return set(_SERIES.findall(_STRING.sub('""', expr)))


def matchers(expr: str) -> Iterator[tuple[str, str, str]]:
    """(series, label, quoted value) of every label matcher in a selector's braces."""
    for name, body in _SELECTOR.findall(expr):
        for label, value in _MATCHER.findall(body):
            yield name, label, value


def grouping_labels(expr: str) -> set[str]:
    """Labels named in the expression's `by (...)` clauses."""
    return {
        label.strip()
        for clause in _GROUPING.findall(_STRING.sub('""', expr))
        for label in clause.split(",")
        if label.strip()
    }


@pytest.fixture(scope="module")
def families() -> dict[str, dict[str, frozenset[str]]]:
    """Each liqmon metric family: its series names, each with the labels a scrape gives it."""
    metrics = Metrics()
    for metric in vars(metrics).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        (family,) = metric.describe()
        labels = EXAMPLE_LABELS.get(family.name)
        child = metric.labels(**labels) if labels else metric
        if isinstance(metric, Histogram):
            child.observe(0.01)
    exposition = metrics.exposition().decode()
    found: dict[str, dict[str, frozenset[str]]] = {}
    for family in metrics.registry.collect():
        assert family.samples, f"{family.name} is labelled: give it an example in EXAMPLE_LABELS"
        series = found.setdefault(family.name, {})
        for sample in family.samples:
            assert re.search(rf"^{sample.name}[{{ ]", exposition, re.MULTILINE), sample.name
            series[sample.name] = series.get(sample.name, TARGET_LABELS) | set(sample.labels)
    return found


@pytest.fixture(scope="module")
def exported(families: dict[str, dict[str, frozenset[str]]]) -> dict[str, frozenset[str]]:
    """Every series name a query may read (liqmon's and `up`) with its labels."""
    series = {name: labels for family in families.values() for name, labels in family.items()}
    return series | SCRAPE_SERIES


def test_dashboard_uses_schema_version_39() -> None:
    assert DASHBOARD["schemaVersion"] == 39


def test_every_panel_has_a_unique_id_and_a_title() -> None:
    ids = [panel["id"] for panel in PANELS]
    assert len(ids) == len(set(ids)), sorted(ids)
    assert all(isinstance(panel.get("title"), str) and panel["title"] for panel in PANELS)


def test_no_two_panels_overlap_on_the_grid() -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in DASHBOARD["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


def test_every_query_reads_the_data_source_variable() -> None:
    for panel in PANELS:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE_UID, panel["title"]


def test_variables_are_a_prometheus_data_source_and_instances_exporting_liqmon_ready() -> None:
    variables = {variable["name"]: variable for variable in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    instance = variables["instance"]
    assert instance["datasource"]["uid"] == DATASOURCE_UID
    assert instance["definition"] == "label_values(liqmon_ready, instance)"
    assert instance["query"]["query"] == instance["definition"]


@pytest.mark.parametrize("query", QUERIES, ids=str)
def test_every_series_a_query_reads_is_exported(
    query: Query, exported: dict[str, frozenset[str]]
) -> None:
    names = series_names(query.expr)
    assert names, f"no liqmon series in {query.expr}"
    assert names <= exported.keys(), sorted(names - exported.keys())


@pytest.mark.parametrize("query", QUERIES, ids=str)
def test_every_label_a_query_groups_or_filters_by_exists_on_its_series(
    query: Query, exported: dict[str, frozenset[str]]
) -> None:
    known = {name: exported[name] for name in series_names(query.expr) if name in exported}
    for name, labels in known.items():
        assert grouping_labels(query.expr) <= labels, (name, query.expr)
    for name, label, _ in matchers(query.expr):
        assert name not in known or label in known[name], (name, label)


@pytest.mark.parametrize("query", QUERIES, ids=str)
def test_every_selector_is_limited_to_the_chosen_instances(query: Query) -> None:
    selected = {name for name, label, value in matchers(query.expr) if label == "instance"}
    assert selected == series_names(query.expr), query.expr
    values = {value for _, label, value in matchers(query.expr) if label == "instance"}
    assert values <= {'"$instance"', '"${instance}"'}, values


def test_account_states_named_in_queries_are_real_states() -> None:
    states = set(typing.get_args(AccountState))
    named = {
        value.strip('"')
        for query in QUERIES
        for name, label, value in matchers(query.expr)
        if name == "liqmon_accounts" and label == "state"
    }
    assert named
    assert named <= states, sorted(named - states)


def test_every_liqmon_metric_is_shown_on_some_panel(
    families: dict[str, dict[str, frozenset[str]]],
) -> None:
    used = set().union(*(series_names(query.expr) for query in QUERIES))
    # The process collector's families are standard; the dashboard shows CPU and memory only.
    unshown = sorted(
        family
        for family, series in families.items()
        if family.startswith("liqmon_") and not series.keys() & used
    )
    assert not unshown, f"add a panel for {unshown}"


def test_every_query_passes_promtool_check_rules(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: `make test` installs Debian's prometheus package"
    rules = []
    for index, query in enumerate(QUERIES):
        expr = query.expr
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"{query}: map its Grafana variable in GRAFANA_VARIABLES"
        rules.append({"record": f"liqmon_dashboard:query_{index}", "expr": expr})
    # JSON is YAML, so the rules file needs no YAML library.
    rules_file = tmp_path / "dashboard_rules.yml"
    rules_file.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rules_file)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert f"{len(rules)} rules found" in result.stdout.decode()
