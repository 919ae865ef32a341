"""deploy/kubernetes: generated files current, manifests valid for the target Kubernetes.

The kustomize base and the example overlay are rendered by deploy/kubernetes/render.py (a
small renderer; `kubectl kustomize` gives the same resources, compared where kubectl is
installed). Built-in kinds are validated strictly with kubernetes-validate (the API schemas
of TARGET_VERSION); the custom resources (Prometheus Operator, Strimzi) are checked against
what they are generated from.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes_validate
import pytest
import yaml

from monitor.cli import build_parser, main
from monitor.config import load_settings
from monitor.instruments import load_instrument_file
from streams.topics import strimzi_topics, topic_specs

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
EXAMPLE = KUBERNETES / "overlays" / "example"
# The oldest Kubernetes minor still maintained upstream when this was written; the manifests
# use nothing newer (policy/v1 PDB, apps/v1, startupProbe).
TARGET_VERSION = "1.33.0"
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule", "KafkaTopic", "KafkaUser"}


def _load_renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("liqmon_render", KUBERNETES / "render.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _load_renderer()
load_documents = render.load_documents
BASE_SETTINGS = load_settings(BASE / "liqmon.toml", environ={})


def by_kind(resources: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["kind"] == kind]


def monitor_deployment(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """The Deployment running `liqmon run` (the example also deploys `liqmon notify`)."""
    (deployment,) = [
        r for r in by_kind(resources, "Deployment") if r["metadata"]["name"] == "liqmon"
    ]
    return deployment


def notify_group(resources: list[dict[str, Any]]) -> str | None:
    for deployment in by_kind(resources, "Deployment"):
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        if args[0] == "notify":
            return str(args[args.index("--group") + 1])
    return None


@pytest.fixture(scope="module", params=["base", "example"])
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = render.render(BASE if request.param == "base" else EXAMPLE)
    return resources


@pytest.fixture(scope="module")
def example() -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = render.render(EXAMPLE)
    return resources


def test_generated_files_are_current() -> None:
    for path, content in render.generated_files().items():
        assert path.read_bytes() == content, (
            f"{path.relative_to(REPO)} is stale: run `make kubernetes`"
        )


def test_built_in_kinds_are_valid_for_the_target_kubernetes(
    rendered: list[dict[str, Any]],
) -> None:
    kinds = set()
    for resource in rendered:
        if resource["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(resource, TARGET_VERSION, strict=True)
        kinds.add(resource["kind"])
    assert {"Deployment", "Service", "PodDisruptionBudget", "ConfigMap"} <= kinds


def test_the_validator_rejects_a_misspelt_field(example: list[dict[str, Any]]) -> None:
    deployment = copy.deepcopy(monitor_deployment(example))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbes"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, TARGET_VERSION, strict=True)


def test_renderer_agrees_with_kubectl_kustomize(example: list[dict[str, Any]]) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; the renderer is checked by the other tests")
    result = subprocess.run(
        [kubectl, "kustomize", str(EXAMPLE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr

    def normalised(resources: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
        text = re.sub(r'-[a-z0-9]{10}"', '-HASH"', json.dumps(resources))
        return {(r["kind"], r["metadata"]["name"]): r for r in json.loads(text)}

    theirs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert normalised(example) == normalised(theirs)


def test_deployment_probes_security_resources_and_grace(rendered: list[dict[str, Any]]) -> None:
    deployment = monitor_deployment(rendered)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"]["cpu"]
    assert container["resources"]["limits"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # The shutdown path waits at most one Kafka request for the last cycle's acks.
    request_timeout_s = BASE_SETTINGS.kafka.request_timeout_ms / 1000
    assert pod["terminationGracePeriodSeconds"] >= 2 * request_timeout_s
    port = container["ports"][0]["containerPort"]
    assert port == BASE_SETTINGS.service.http_port
    assert BASE_SETTINGS.service.http_host == "0.0.0.0"


def test_replicas_stay_within_the_fills_partitions(rendered: list[dict[str, Any]]) -> None:
    deployment = monitor_deployment(rendered)
    assert 1 <= deployment["spec"]["replicas"] <= BASE_SETTINGS.topics.fills_partitions


def test_every_config_map_a_pod_reads_exists(rendered: list[dict[str, Any]]) -> None:
    names = {r["metadata"]["name"] for r in by_kind(rendered, "ConfigMap")}
    wanted: set[str] = set()
    for deployment in by_kind(rendered, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        wanted |= {v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
        wanted |= {
            source["configMapRef"]["name"]
            for source in pod["containers"][0].get("envFrom", [])
            if "configMapRef" in source
        }
    missing = wanted - names
    # The base leaves the instruments to the overlay.
    assert {re.sub(r"-[a-z0-9]{10}$", "", name) for name in missing} <= {"liqmon-instruments"}
    if by_kind(rendered, "KafkaUser"):
        assert not missing


def test_example_overlay_configures_a_valid_sasl_client_and_instruments(
    example: list[dict[str, Any]],
) -> None:
    maps = {
        r["metadata"]["name"].rsplit("-", 1)[0]: r["data"] for r in by_kind(example, "ConfigMap")
    }
    deployment = monitor_deployment(example)
    env = dict(maps["liqmon-kafka"])
    (password,) = [
        v
        for v in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        if v["name"] == "LIQMON_KAFKA__SASL_PLAIN_PASSWORD"
    ]
    (user,) = by_kind(example, "KafkaUser")
    assert password["valueFrom"]["secretKeyRef"]["name"] == user["metadata"]["name"]
    env[password["name"]] = "from-the-secret"
    config = BASE.parent / "base" / "liqmon.toml"
    settings = load_settings(config, environ=env)
    assert settings.kafka.security_protocol == "SASL_PLAINTEXT"
    assert settings.kafka.sasl_plain_username == user["metadata"]["name"]
    path = EXAMPLE / "instruments.json"
    assert json.loads(maps["liqmon-instruments"]["instruments.json"]) == json.loads(
        path.read_text()
    )
    assert load_instrument_file(path).instruments


def test_kafka_topics_are_those_liqmon_topics_would_create(rendered: list[dict[str, Any]]) -> None:
    topics = by_kind(rendered, "KafkaTopic")
    expected = strimzi_topics(topic_specs(BASE_SETTINGS.topics), cluster="kafka")
    assert [t["spec"] for t in topics] == [e["spec"] for e in expected]
    clusters = {t["metadata"]["labels"]["strimzi.io/cluster"] for t in topics}
    users = by_kind(rendered, "KafkaUser")
    assert clusters == ({u["metadata"]["labels"]["strimzi.io/cluster"] for u in users} or {"kafka"})


def test_kafka_user_may_use_every_topic_and_the_group(example: list[dict[str, Any]]) -> None:
    (user,) = by_kind(example, "KafkaUser")
    acls = user["spec"]["authorization"]["acls"]
    topics = {a["resource"]["name"] for a in acls if a["resource"]["type"] == "topic"}
    assert topics == set(BASE_SETTINGS.topics.names())
    groups = {a["resource"]["name"] for a in acls if a["resource"]["type"] == "group"}
    assert groups == {BASE_SETTINGS.service.group_id, notify_group(example)}


def test_prometheus_rule_carries_the_rules_file_and_passes_promtool(
    rendered: list[dict[str, Any]], tmp_path: Path
) -> None:
    (rule,) = by_kind(rendered, "PrometheusRule")
    source = yaml.safe_load((REPO / "deploy/prometheus/rules.yml").read_text())
    assert rule["spec"]["groups"] == source["groups"]
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: deploy/setup-system.sh installs prometheus"
    extracted = tmp_path / "rules.yml"
    extracted.write_text(yaml.safe_dump(rule["spec"]))
    result = subprocess.run(
        [promtool, "check", "rules", str(extracted)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_service_monitor_scrapes_the_service_port_as_job_liqmon(
    rendered: list[dict[str, Any]],
) -> None:
    (monitor,) = by_kind(rendered, "ServiceMonitor")
    (service,) = by_kind(rendered, "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert {p["name"] for p in service["spec"]["ports"]} >= {
        monitor["spec"]["endpoints"][0]["port"]
    }
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "liqmon"


def test_disruption_budget_and_service_select_the_pods(rendered: list[dict[str, Any]]) -> None:
    deployment = monitor_deployment(rendered)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    (budget,) = by_kind(rendered, "PodDisruptionBudget")
    (service,) = by_kind(rendered, "Service")
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert budget["spec"]["maxUnavailable"] == 1


def test_liqmon_topics_strimzi_prints_the_generated_kafka_topics(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in [v for v in os.environ if v.startswith("LIQMON_TOPICS__")]:
        monkeypatch.delenv(variable)
    assert main(["topics", "strimzi", "--config", str(BASE / "liqmon.toml")]) == 0
    printed = [doc for doc in yaml.safe_load_all(capsys.readouterr().out) if doc]
    assert printed == load_documents(BASE / "kafka-topics.yaml")
    assert [doc["spec"]["topicName"] for doc in printed] == list(BASE_SETTINGS.topics.names())


def test_example_notify_reads_its_webhook_from_a_secret_with_valid_settings(
    example: list[dict[str, Any]],
) -> None:
    (notify,) = [d for d in by_kind(example, "Deployment") if d is not monitor_deployment(example)]
    container = notify["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][0] == "notify"
    args = build_parser().parse_args([*container["args"], "--url", "https://hooks.example/x"])
    assert args.group != BASE_SETTINGS.service.group_id
    env = {v["name"]: v for v in container["env"]}
    assert env["LIQMON_NOTIFY_URL"]["valueFrom"]["secretKeyRef"]["name"] == "liqmon-notify"
    assert env["LIQMON_CONFIG"]["value"].startswith("/etc/liqmon/config/")
    assert "livenessProbe" not in container  # no HTTP server to probe
