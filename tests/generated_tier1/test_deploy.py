"""Deployment outputs that cannot run on these machines (no Docker engine, Kubernetes, Cloud
Run or Lambda): validated against their schemas, checked for consistency with each other
and with the app, and, for Lambda, the handler invoked with a real API Gateway event."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from forge_testing import free_port, redis_database, run, throwaway_database, wait_until
from forge_testing.scaffolding import COMBOS, DEFAULT, Combo
from forge_testing.venvs import create_venv

from .conftest import BuiltProjects

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
HEALTH, READY = "/health", "/health/ready"
API_KEY = "e2e-key-0123456789abcdef"


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def combos_with(deploy: str) -> list[Combo]:
    return [combo for combo in COMBOS if combo.deploy == deploy]


# --- Dockerfile (base: every deploy option builds the same image) ------------------------


@pytest.mark.parametrize("combo", COMBOS, ids=str)
def test_dockerfile(scaffolded: dict[str, Path], combo: Combo) -> None:
    text = (scaffolded[combo.name] / "Dockerfile").read_text()
    stages = re.findall(
        r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.MULTILINE | re.IGNORECASE
    )
    assert len(stages) >= 2, "multi-stage build expected"
    assert re.search(r"^ARG PYTHON_VERSION=3\.(1[2-9])$", text, re.MULTILINE), (
        "image Python 3.12+"
    )
    assert re.search(
        r"^COPY --from=ghcr\.io/astral-sh/uv:[0-9.]+ /uv /uvx /bin/$",
        text,
        re.MULTILINE,
    )
    user = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert user and not user[-1].startswith(("root", "0")), (
        "the runtime stage must not run as root"
    )
    assert "HEALTHCHECK" in text and HEALTH in text
    assert f"{combo.package}.main:create_app" in text
    dockerignore = (scaffolded[combo.name] / ".dockerignore").read_text().splitlines()
    assert ".env" in dockerignore and ".venv" in dockerignore


def runtime_stage(
    dockerfile: str,
) -> tuple[dict[str, str], list[str], list[str], list[str]]:
    """ENV, COPY sources (from the build context), HEALTHCHECK and CMD of the last stage."""
    text = re.sub(r"\\\n\s*", " ", dockerfile)
    stage = text[text.rindex("\nFROM ") :]
    env: dict[str, str] = {}
    sources: list[str] = []
    healthcheck: list[str] = []
    cmd: list[str] = []
    for line in stage.splitlines():
        instruction, _, rest = line.strip().partition(" ")
        if instruction == "ENV":
            env |= dict(re.findall(r'(\w+)=("[^"]*"|\S+)', rest))
        elif instruction == "COPY" and "--from=" not in rest:
            sources += [word for word in rest.split()[:-1] if not word.startswith("--")]
        elif instruction == "HEALTHCHECK":
            healthcheck = json.loads(rest[rest.index("CMD ") + 4 :])
        elif instruction == "CMD":
            cmd = json.loads(rest)
    return {k: v.strip('"') for k, v in env.items()}, sources, healthcheck, cmd


def test_image_runtime_stage_runs_its_command(
    built_projects: BuiltProjects,
    pg_admin_url: str,
    redis_base_url: str,
    tmp_path: Path,
    run_process,
) -> None:
    """No Docker engine here: lay out the runtime stage as the Dockerfile does (a
    non-editable install plus the files it copies), then run its migrations, its CMD and
    its HEALTHCHECK as written."""
    combo = DEFAULT
    project = built_projects.get(combo)
    env_vars, sources, healthcheck, cmd = runtime_stage(
        (project.root / "Dockerfile").read_text()
    )
    app = tmp_path / "app"
    app.mkdir()
    create_venv(app / ".venv", project.root, cwd=app)
    for pattern in sources:
        for source in project.root.glob(pattern):
            target = app / source.name
            if source.is_dir():
                shutil.copytree(
                    source, target, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy2(source, target)
    assert (app / "alembic.ini").is_file(), "the image must carry alembic.ini"

    port = free_port()
    env = {
        **env_vars,
        "PATH": f"{app / '.venv' / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PORT": str(port),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        "JWT_SECRET": "image-secret-" + "z" * 40,
        "JWT_AUDIENCE": combo.name,
        "JWT_ISSUER": combo.name,
    }
    assert env_vars["PATH"].startswith("/app/.venv/bin"), env_vars
    with (
        throwaway_database(pg_admin_url, prefix="forge_image") as database_url,
        redis_database(redis_base_url) as redis_url,
    ):
        env |= {"DATABASE_URL": database_url, "REDIS_URL": redis_url}
        run(["alembic", "upgrade", "head"], cwd=app, env=env)
        server = run_process("image-cmd", cmd, cwd=app, env=env)
        url = f"http://127.0.0.1:{port}"
        wait_until(
            server,
            lambda: httpx.get(f"{url}/health/ready").status_code == 200,
            "readiness of the image's CMD",
            60,
        )
        probe = run(healthcheck, cwd=app, env=env, check=False)
        assert probe.returncode == 0, probe.stdout
        server.stop()
    assert server.log_text().count("Application startup complete") == int(
        env_vars["WEB_CONCURRENCY"]
    )


# --- docker compose ----------------------------------------------------------------------


@pytest.mark.parametrize("combo", combos_with("compose"), ids=str)
def test_compose_file_matches_the_compose_spec(
    scaffolded: dict[str, Path], combo: Combo
) -> None:
    root = scaffolded[combo.name]
    compose_file = root / "docker-compose.yml"
    # check-jsonschema vendors the compose-spec schema: no network needed.
    result = subprocess.run(
        [
            BIN / "check-jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            compose_file,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    compose = yaml.safe_load(compose_file.read_text())
    services = compose["services"]
    # The services follow the options: PostgreSQL and its migration job only with
    # --db postgres, the job worker only with a queue.
    sql, worker = combo.db == "postgres", combo.queue != "none"
    expected = {"api", "redis"} | ({"postgres", "migrate"} if sql else set())
    expected |= {"worker"} if worker else set()
    expected |= {"mongodb"} if combo.db == "mongodb" else set()
    assert set(services) == expected
    for name in expected - {"worker", "migrate"}:
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    for name in ("api", "worker") if worker else ("api",):
        depends = services[name]["depends_on"]
        assert depends["redis"]["condition"] == "service_healthy"
        if sql:
            assert depends["postgres"]["condition"] == "service_healthy"
            assert depends["migrate"]["condition"] == "service_completed_successfully"
    if worker:
        assert services["worker"]["command"][-1].endswith(
            f"python -m {combo.package}.worker"
        )
    if sql:
        assert services["migrate"]["command"] == ["alembic", "upgrade", "head"]
    # Secrets come from .env: every ${VAR} is documented in .env.example, no literal password.
    env_example = (root / ".env.example").read_text()
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", env_example, re.MULTILINE))
    referenced = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", compose_file.read_text()))
    assert referenced <= documented, f"undocumented: {referenced - documented}"
    assert not re.search(
        r"PASSWORD[\"']?\s*[:=]\s*[\"']?\w", compose_file.read_text().replace("${", "")
    )


# --- Kubernetes --------------------------------------------------------------------------


@pytest.mark.parametrize("combo", combos_with("k8s"), ids=str)
def test_kubernetes_manifests(scaffolded: dict[str, Path], combo: Combo) -> None:
    k8s = scaffolded[combo.name] / "k8s"
    manifests = sorted(p for p in k8s.glob("*.yaml") if p.name != "kustomization.yaml")
    # kubernetes-validate ships the API schemas: strict validation, offline.
    result = subprocess.run(
        [BIN / "kubernetes-validate", "--strict", *manifests],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(manifests), result.stdout

    docs = {
        (doc["kind"], doc["metadata"]["name"]): doc
        for path in manifests
        for doc in load_all(path)
    }
    kustomization = yaml.safe_load((k8s / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (k8s / resource).is_file(), f"kustomization lists missing {resource}"

    name = combo.name
    api = docs[("Deployment", name)]
    # The files follow the options: a worker only with a queue, a migration Job only with SQL.
    worker = docs.get(("Deployment", f"{name}-worker"))
    assert (worker is not None) == (combo.queue != "none")
    for deployment in (api, worker) if worker is not None else (api,):
        pod = deployment["spec"]["template"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod["metadata"]["labels"].items(), (
            "selector must match the pod"
        )
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        for container in pod["spec"]["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert (
                container["resources"]["requests"] and container["resources"]["limits"]
            )
            refs = {
                ref.get("configMapRef", ref.get("secretRef", {})).get("name")
                for ref in container["envFrom"]
            }
            assert refs == {f"{name}-config", f"{name}-secrets"}
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == HEALTH
    assert container["readinessProbe"]["httpGet"]["path"] == READY
    if worker is not None:
        assert worker["spec"]["template"]["spec"]["containers"][0]["command"] == [
            "python",
            "-m",
            f"{combo.package}.worker",
        ]

    pod_labels = api["spec"]["template"]["metadata"]["labels"]
    service = docs[("Service", name)]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    hpa = docs[("HorizontalPodAutoscaler", name)]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": name,
    }
    pdb = docs[("PodDisruptionBudget", name)]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert (
        pdb["spec"]["minAvailable"]
        < api["spec"]["replicas"]
        <= hpa["spec"]["minReplicas"] + 1
    )
    assert ("ConfigMap", f"{name}-config") in docs and (
        "Secret",
        f"{name}-secrets",
    ) in docs
    job = docs.get(("Job", f"{name}-migrate"))
    assert (job is not None) == (combo.db == "postgres")
    if job is not None:
        assert job["spec"]["template"]["spec"]["containers"][0]["command"] == [
            "alembic",
            "upgrade",
            "head",
        ]


# --- Cloud Run ---------------------------------------------------------------------------


@pytest.mark.parametrize("combo", combos_with("cloudrun"), ids=str)
def test_cloud_run_service(scaffolded: dict[str, Path], combo: Combo) -> None:
    root = scaffolded[combo.name] / "cloudrun"
    text = (root / "service.yaml").read_text()
    # The only blanks left for the user: the GCP project and region (envsubst).
    assert set(re.findall(r"\$\{(\w+)\}", text)) == {"PROJECT_ID", "REGION"}
    service = yaml.safe_load(text)
    assert (
        service["apiVersion"] == "serving.knative.dev/v1"
        and service["kind"] == "Service"
    )
    assert service["metadata"]["name"] == combo.name
    template = service["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert int(annotations["autoscaling.knative.dev/maxScale"]) >= int(
        annotations["autoscaling.knative.dev/minScale"]
    )
    spec = template["spec"]
    assert 0 < spec["timeoutSeconds"] <= 3600 and spec["containerConcurrency"] > 0
    (container,) = spec["containers"]
    dockerfile = (scaffolded[combo.name] / "Dockerfile").read_text()
    assert f"PORT={container['ports'][0]['containerPort']}" in dockerfile, (
        "port must match the image"
    )
    assert container["ports"][0]["name"] in ("http1", "h2c")
    assert container["startupProbe"]["httpGet"]["path"] == HEALTH
    assert container["livenessProbe"]["httpGet"]["path"] == HEALTH
    secrets = [e for e in container["env"] if "valueFrom" in e]
    database_url = {"postgres": {"DATABASE_URL"}, "mongodb": {"MONGODB_URL"}}
    assert {e["name"] for e in secrets} >= {
        "REDIS_URL",
        *database_url.get(combo.db, ()),
    }
    for entry in secrets:
        assert set(entry["valueFrom"]["secretKeyRef"]) == {"name", "key"}
    assert all("value" in e or "valueFrom" in e for e in container["env"])
    assert service["spec"]["traffic"] == [{"latestRevision": True, "percent": 100}]

    if combo.db != "postgres":
        assert not (root / "migrate-job.yaml").exists(), (
            "no SQL database: nothing to migrate"
        )
        return
    job = yaml.safe_load((root / "migrate-job.yaml").read_text())
    assert job["apiVersion"] == "run.googleapis.com/v1" and job["kind"] == "Job"
    task = job["spec"]["template"]["spec"]["template"]["spec"]
    assert task["containers"][0]["command"] == ["alembic", "upgrade", "head"]


# --- AWS Lambda --------------------------------------------------------------------------


class CloudFormationLoader(yaml.SafeLoader):
    """SafeLoader that keeps CloudFormation's short-form intrinsics (!Sub, !Ref, ...)."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node)
    else:
        value = loader.construct_mapping(node)
    return {f"Fn::{suffix}" if suffix != "Ref" else "Ref": value}


CloudFormationLoader.add_multi_constructor("!", _intrinsic)


@pytest.mark.parametrize("combo", combos_with("serverless"), ids=str)
def test_sam_template(scaffolded: dict[str, Path], combo: Combo) -> None:
    root = scaffolded[combo.name]
    template = yaml.load(
        (root / "template.yaml").read_text(), Loader=CloudFormationLoader
    )
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    function = template["Resources"]["ApiFunction"]
    assert function["Type"] == "AWS::Serverless::Function"
    runtime = template["Globals"]["Function"]["Runtime"]
    assert re.fullmatch(r"python3\.(1[2-9])", runtime), runtime
    handler = function["Properties"]["Handler"]
    module, _, attribute = handler.rpartition(".")
    assert module == f"{combo.package}.lambda_handler" and attribute == "handler"
    assert (root / "src" / combo.package / "lambda_handler.py").is_file()
    events = function["Properties"]["Events"]
    assert {event["Type"] for event in events.values()} == {"HttpApi"}
    assert "mangum" in (root / "pyproject.toml").read_text()
    makefile = (root / "Makefile").read_text()
    assert "build-ApiFunction:" in makefile and f"--no-binary {combo.name}" in makefile


def api_gateway_v2_event(
    method: str,
    path: str,
    body: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An HTTP API (payload format 2.0) event as API Gateway sends it."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "host": "abc123.execute-api.eu-west-1.amazonaws.com",
            "user-agent": "e2e",
            "x-forwarded-for": "198.51.100.7",
            "x-forwarded-proto": "https",
            "x-forwarded-port": "443",
            **(headers or {}),
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "198.51.100.7",
                "userAgent": "e2e",
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "10/Mar/2026:00:03:44 +0000",
            "timeEpoch": 1773101024000,
        },
        "body": body,
        "isBase64Encoded": False,
    }


INVOKE = """
import json, sys
from {package}.lambda_handler import handler

class Context:
    function_name = "api"; aws_request_id = "e2e-request"; memory_limit_in_mb = 512
    def get_remaining_time_in_millis(self): return 30000

for event in json.loads(sys.stdin.read()):
    print(json.dumps(handler(event, Context())))
"""


@pytest.mark.parametrize("combo", combos_with("serverless"), ids=str)
def test_lambda_handler_serves_api_gateway_events(
    built_projects: BuiltProjects, combo: Combo, redis_base_url: str
) -> None:
    project = built_projects.get(combo)
    events = [
        api_gateway_v2_event("GET", HEALTH),
        # Without credentials: 401 behind auth, else the unknown job's 404.
        api_gateway_v2_event("GET", f"/agents/jobs/{uuid.uuid4()}"),
    ]
    if combo.agent != "none":
        events.append(
            api_gateway_v2_event(
                "POST",
                "/agents/run",
                json.dumps({"prompt": "hello lambda"}),
                {"content-type": "application/json", **auth_header(combo)},
            )
        )
    with redis_database(redis_base_url) as redis_url:
        result = subprocess.run(
            [project.python, "-c", INVOKE.format(package=combo.package)],
            input=json.dumps(events),
            capture_output=True,
            text=True,
            cwd=project.root,
            env=project.env(
                REDIS_URL=redis_url,
                AGENT_RUNNER="fake",
                LOG_JSON="true",
                API_KEYS=json.dumps(
                    {"e2e": hashlib.sha256(API_KEY.encode()).hexdigest()}
                ),
                JWT_SECRET="s" * 40,
                # Read lazily on the first authenticated request, which this test never
                # makes for --auth oauth2 (the project's own tests cover it).
                OIDC_ISSUER="http://127.0.0.1:9/",
                OIDC_AUDIENCE=combo.name,
                OIDC_JWKS_URL="http://127.0.0.1:9/jwks",
            ),
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    responses = [
        json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")
    ]
    assert len(responses) == len(events), result.stdout + result.stderr
    health, anonymous, *run = responses
    assert health["statusCode"] == 200, health
    assert json.loads(health["body"]).get("status") in ("ok", "alive", "healthy"), (
        health
    )
    assert anonymous["statusCode"] == (404 if combo.auth == "none" else 401), anonymous
    if run:
        assert run[0]["statusCode"] == 200, run[0]
        assert json.loads(run[0]["body"])["output"] == "You said: hello lambda"


def auth_header(combo: Combo) -> dict[str, str]:
    if combo.auth == "none":
        return {}
    if combo.auth == "apikey":
        return {"x-api-key": API_KEY}
    pytest.fail(f"no credentials for --auth {combo.auth} in the Lambda test; add them")
