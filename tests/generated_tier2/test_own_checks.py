"""Every generated package passes ruff and its own tests; the Kafka variant (no Kafka server
on these machines) is checked by ruff and by importing it against the real aiokafka."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from forge_testing import clean_env, run, throwaway_database

from .conftest import Build
from .system import source_path

pytestmark = pytest.mark.e2e
PACKAGES = (
    "shared/common",
    "shared/platform",
    "gateway",
    "services/user-service",
    "services/notification-service",
    "services/agent-service",
)


@pytest.mark.parametrize("broker", ["redis", "rabbitmq", "kafka"])
def test_ruff_clean(tier2: Build, broker: str) -> None:
    project = {
        "redis": tier2.redis_project,
        "rabbitmq": tier2.rabbit_project,
        "kafka": tier2.kafka_project,
    }[broker]
    ruff = str(tier2.venv.bin("ruff"))
    for package in PACKAGES:
        run([ruff, "check", "--no-cache", "."], cwd=project / package)
        run([ruff, "format", "--check", "--no-cache", "."], cwd=project / package)


def test_kafka_variant_imports_against_aiokafka(tier2: Build) -> None:
    env = clean_env() | {"PYTHONPATH": source_path(tier2.kafka_project)}
    out = run(
        [
            str(tier2.venv.python),
            "-c",
            (
                "import shop_platform.broker as b, notification_service.main, user_service.main; "
                "print(type(b.create_broker).__name__, b.bootstrap_servers('kafka://k:9092'))"
            ),
        ],
        cwd=tier2.kafka_project,
        env=env,
    ).stdout
    assert "k:9092" in out


@pytest.mark.parametrize("package", ["shared/common", "shared/platform", "gateway"])
def test_shared_and_gateway_tests(tier2: Build, package: str) -> None:
    run(
        [str(tier2.venv.python), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tier2.redis_project / package,
        env=clean_env(),
    )


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_service_tests_pass_in_any_order_on_one_broker(
    tier2: Build, broker: str, pg_admin_url: str, request: pytest.FixtureRequest
) -> None:
    """The services' own tests, each on a fresh database but all on ONE broker, as a
    developer runs them: notification-service's (which publishes a `user.registered` v99)
    once broke user-service's, which read the stream from its start."""
    project = tier2.redis_project if broker == "redis" else tier2.rabbit_project
    broker_url = request.getfixturevalue(
        "redis_broker_url" if broker == "redis" else "rabbit_url"
    )
    for service in ("notification-service", "user-service", "notification-service"):
        # The service's test conftest migrates the database.
        with throwaway_database(pg_admin_url, prefix="e2e_own") as database_url:
            env = clean_env() | {
                "DATABASE_URL": database_url,
                "BROKER_URL": broker_url,
                "PYTHONPATH": source_path(project),
            }
            run(
                [
                    str(tier2.venv.python),
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                ],
                cwd=project / "services" / service,
                env=env,
            )


@pytest.mark.parametrize("broker", ["redis", "rabbitmq", "kafka"])
def test_deploy_files_validate(tier2: Build, broker: str) -> None:
    """Compose files against the compose-spec schema, manifests against Kubernetes 1.31
    schemas (offline: no Docker engine or cluster here)."""
    import kubernetes_validate
    import yaml

    project = {
        "redis": tier2.redis_project,
        "rabbitmq": tier2.rabbit_project,
        "kafka": tier2.kafka_project,
    }[broker]
    compose_files = sorted(str(p) for p in project.glob("docker-compose*.yml"))
    assert len(compose_files) == 2  # the broker is in docker-compose.yml, per --broker
    checker = Path(sys.executable).with_name("check-jsonschema")
    run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", *compose_files],
        cwd=project,
    )
    kinds = []
    for manifest in sorted((project / "k8s").glob("*.yaml")):
        if manifest.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(manifest.read_text()):
            kubernetes_validate.validate(document, "1.31.0", strict=True)
            kinds.append((document["kind"], document["metadata"]["name"]))
    for service in ("gateway", "user-service", "notification-service", "agent-service"):
        assert ("Deployment", service) in kinds and ("Service", service) in kinds
