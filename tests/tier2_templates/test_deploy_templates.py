"""docker_compose.yml and k8s_deployment.yaml: valid against their published schemas
(offline: the compose-spec schema shipped in check-jsonschema, the Kubernetes schemas in
kubernetes-validate), and the properties that schemas cannot check."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import redis
import yaml
from forge_testing import TEMPLATES
from kubernetes_validate.utils import ValidationError as K8sValidationError

from tier2_templates.helpers import GATEWAY_SERVER_ARGS, gateway_module

COMPOSE = TEMPLATES / "docker_compose.yml"
K8S = TEMPLATES / "k8s_deployment.yaml"
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")
TIER2_SERVICES = {
    "gateway",
    "user-service",
    "agent-service",
    "notification-service",
    "worker",
    "postgres",
    "redis",
}
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY|PRIVATE_KEY)", re.IGNORECASE)
REQUIRED_REF = re.compile(r"^\$\{[A-Z0-9_]+:\?[^}]+\}$")
URL_PASSWORD = re.compile(r"://[^/:@\s]+:([^@\s]+)@")


def gateway_settings(values: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The values as the gateway reads them from its environment."""
    settings_class = gateway_module().GatewaySettings
    for name in settings_class.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return settings_class(_env_file=None)


# --------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())  # resolves `<<` merges
    return data


def run_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_compose_file_matches_the_compose_spec_schema(tmp_path: Path) -> None:
    result = run_compose_schema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr

    # The same check fails on a misspelt key, so a pass above means something.
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("depends_on:", "depend_on:", 1))
    result = run_compose_schema(broken)
    assert result.returncode != 0
    assert "depend_on" in result.stdout + result.stderr


def test_compose_has_the_whole_tier2_system(compose: dict[str, Any]) -> None:
    assert TIER2_SERVICES <= set(compose["services"])


def _long_running(service: dict[str, Any]) -> bool:
    return service.get("restart") != "no"


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if _long_running(service):
            check = service.get("healthcheck")
            assert check and check.get("test"), f"{name} has no healthcheck"
            assert not check.get("disable"), name


def test_start_order_waits_for_health_not_for_start(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for target, rule in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = rule.get("condition")
            if _long_running(services[target]):
                assert condition == "service_healthy", f"{name} -> {target}"
                assert services[target].get("healthcheck"), target
            else:
                assert condition == "service_completed_successfully", (
                    f"{name} -> {target}"
                )
    # The gateway starts last, the services after their databases are ready.
    gateway_waits_for = set(services["gateway"]["depends_on"])
    assert {
        "user-service",
        "agent-service",
        "notification-service",
    } <= gateway_waits_for
    for name in ("user-service", "agent-service", "notification-service", "worker"):
        assert "redis" in services[name]["depends_on"], name


def _walk_env(compose: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    for name, service in compose["services"].items():
        environment = service.get("environment", {})
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        for key, value in environment.items():
            yield name, key, str(value)


def test_no_secret_is_written_in_the_compose_file(compose: dict[str, Any]) -> None:
    checked = 0
    for name, key, value in _walk_env(compose):
        if key.endswith("_FILE"):
            assert value.startswith("/run/secrets/"), f"{name}.{key}"
        elif SECRET_NAME.search(key):
            assert REQUIRED_REF.match(value), f"{name}.{key} is a literal: {value!r}"
            checked += 1
        if match := URL_PASSWORD.search(value):
            assert REQUIRED_REF.match(match.group(1)), f"{name}.{key}: password in URL"
            checked += 1
    assert checked >= 2  # the API keys (JWT secrets were 3 more: now none)
    for name, secret in compose.get("secrets", {}).items():
        assert set(secret) & {"file", "environment", "external"}, name
    assert "postgres_password" in compose["services"]["postgres"]["secrets"]


def test_only_user_service_holds_the_signing_key(compose: dict[str, Any]) -> None:
    holders = [
        name
        for name, service in compose["services"].items()
        if "jwt_private_key" in service.get("secrets", [])
    ]
    assert holders == ["user-service"]
    for name, key, value in _walk_env(compose):
        assert key != "JWT_SECRET", f"{name} has a shared signing secret"
        if key == "JWKS_URL":
            assert value.startswith("http://user-service:"), f"{name}: {value}"
    assert "JWKS_URL" in compose["services"]["gateway"]["environment"]


def test_only_the_gateway_is_published(compose: dict[str, Any]) -> None:
    published = {n for n, s in compose["services"].items() if s.get("ports")}
    assert published == {"gateway"}
    assert compose["networks"]["backend"]["internal"] is True
    for name in ("postgres", "redis", "user-service"):
        assert compose["services"][name]["networks"] == ["backend"], name


def test_every_service_has_resource_limits(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
        assert limits.get("memory") and limits.get("cpus"), f"{name} has no limits"


def test_state_lives_in_declared_named_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes", {}))
    used: set[str] = set()
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            source = (
                mount.split(":", 1)[0] if isinstance(mount, str) else mount["source"]
            )
            assert not source.startswith((".", "/")), f"{name}: bind mount {source}"
            used.add(source)
    assert used == declared
    assert (
        "pgdata:/var/lib/postgresql/data" in compose["services"]["postgres"]["volumes"]
    )


def test_app_containers_are_hardened(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if "build" not in service:
            continue  # database images manage their own users
        assert service.get("read_only") is True, name
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name


def test_worker_healthcheck_reads_arqs_health_key(
    compose: dict[str, Any], redis_url: str
) -> None:
    worker = compose["services"]["worker"]
    kind, program, flag, code = worker["healthcheck"]["test"]
    assert (kind, program, flag) == ("CMD", "python", "-c")
    queue = worker["environment"]["QUEUE_NAME"]
    env = {**os.environ, "REDIS_URL": redis_url, "QUEUE_NAME": queue}

    def healthcheck() -> int:
        argv = [sys.executable, "-c", code]
        return subprocess.run(argv, env=env, timeout=60).returncode

    assert healthcheck() == 1, "healthy without a worker"
    client = redis.Redis.from_url(redis_url)
    try:
        client.psetex(f"{queue}:health-check", 10_000, b"as ARQ writes it")
        assert healthcheck() == 0
    finally:
        client.close()


def test_gateway_settings_in_compose_are_valid_for_the_gateway(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = dict(compose["services"]["gateway"]["environment"])
    settings = gateway_settings(environment, monkeypatch)
    for name, spec in settings.services.items():
        host = spec.url.host
        assert host in compose["services"], f"{name} routes to unknown {host}"
        assert spec.url.port == 8000


def _server_flags(argv: list[str]) -> list[str]:
    """The uvicorn flags after APP, '--x=y' spelled '--x y', host and port left out."""
    flags: list[str] = []
    for arg in argv[argv.index("microservice_gateway:app") + 1 :]:
        flags += arg.split("=", 1)
    for name in ("--host", "--port"):
        at = flags.index(name)
        del flags[at : at + 2]
    return flags


# The protocol that bounds request heads (size and time) is a uvicorn flag: a deployment
# that forgets it is open to slowloris. The tests run the gateway with the same flags.
def test_compose_runs_the_gateway_as_the_tests_do(compose: dict[str, Any]) -> None:
    assert _server_flags(compose["services"]["gateway"]["command"]) == (
        GATEWAY_SERVER_ARGS
    )


def test_kubernetes_runs_the_gateway_as_the_tests_do(
    manifests: list[dict[str, Any]],
) -> None:
    container = by_kind(manifests, "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]
    flags = _server_flags(container["command"])
    # Behind the ingress: forwarded headers trusted from FORWARDED_ALLOW_IPS only.
    expected = [f for f in GATEWAY_SERVER_ARGS if f != "--no-proxy-headers"]
    assert flags == [*expected, "--proxy-headers"]


# --------------------------------------------------------------------------- kubernetes


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(K8S.read_text()) if doc]


def by_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [doc for doc in manifests if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize("version", ["1.31.0", kubernetes_validate.latest_version()])
def test_manifests_validate_against_kubernetes_schemas(
    manifests: list[dict[str, Any]], version: str
) -> None:
    for doc in manifests:
        kubernetes_validate.validate(doc, version, strict=True)

    # Strict validation rejects an unknown field, so a pass above means something.
    broken = copy.deepcopy(by_kind(manifests, "Deployment"))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(K8sValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def test_all_the_objects_are_there(manifests: list[dict[str, Any]]) -> None:
    kinds = {(doc["apiVersion"], doc["kind"]) for doc in manifests}
    assert kinds == {
        ("v1", "ConfigMap"),
        ("apps/v1", "Deployment"),
        ("v1", "Service"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("policy/v1", "PodDisruptionBudget"),
    }


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_selectors_match_the_pod_labels(manifests: list[dict[str, Any]]) -> None:
    deployment = by_kind(manifests, "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _matches(selector, pod_labels)
    assert _matches(by_kind(manifests, "Service")["spec"]["selector"], pod_labels)
    pdb = by_kind(manifests, "PodDisruptionBudget")
    assert _matches(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    for spread in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]:
        assert _matches(spread["labelSelector"]["matchLabels"], pod_labels)

    target = by_kind(manifests, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert target == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    hpa = by_kind(manifests, "HorizontalPodAutoscaler")["spec"]
    assert hpa["minReplicas"] >= 2, "one replica cannot survive a disruption"
    assert pdb["spec"]["minAvailable"] < hpa["minReplicas"], (
        "the PDB would block drains"
    )


def test_containers_have_probes_resources_and_a_locked_down_context(
    manifests: list[dict[str, Any]],
) -> None:
    pod = by_kind(manifests, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    writable = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
    for container in pod["containers"]:
        name = container["name"]
        port_names = {p["name"] for p in container["ports"]}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            http = container[probe]["httpGet"]
            assert http["port"] in port_names, f"{name}.{probe}"
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][bound]), name
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts.get("/tmp") in writable, "read-only root needs a writable /tmp"
        image = container["image"]
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image


def test_secrets_are_referenced_never_written(manifests: list[dict[str, Any]]) -> None:
    assert not [doc for doc in manifests if doc["kind"] == "Secret"]
    config = by_kind(manifests, "ConfigMap")
    for key in config["data"]:
        assert not SECRET_NAME.search(key), f"ConfigMap holds {key}"
    pod = by_kind(manifests, "Deployment")["spec"]["template"]["spec"]
    references = 0
    for container in pod["containers"]:
        for entry in container.get("env", []):
            if SECRET_NAME.search(entry["name"]):
                assert "value" not in entry, f"{entry['name']} is a literal"
                assert entry["valueFrom"]["secretKeyRef"]["name"], entry
                references += 1
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] == config["metadata"]["name"]
    # The gateway holds no secret: it verifies tokens with user-service's public keys.
    assert references == 0


def test_configmap_is_valid_gateway_configuration(
    manifests: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = dict(by_kind(manifests, "ConfigMap")["data"])
    data.pop("FORWARDED_ALLOW_IPS")  # read by uvicorn, not by the gateway
    settings = gateway_settings(data, monkeypatch)
    # No secret: the gateway verifies with user-service's public keys.
    assert settings.jwks_url.startswith("http://user-service/")
    for spec in settings.services.values():
        assert spec.url.host.endswith("-service"), "route to Kubernetes Service names"
    assert json.loads(data["PUBLIC_PATHS"]) == settings.public_paths
