"""Deployment files follow the options: for every combination of the end-to-end set (the Tier 1
COMBOS, Tier 2 and Tier 3 per broker), the compose and Kubernetes files name only services,
volumes, networks and variables the project has, and each app container's settings class
validates with exactly the environment its deployment file gives it.

The settings are the generated classes themselves, imported in a child interpreter whose
`os.environ` is that environment and nothing else (no `.env` file is read). Values a user
must fill in (empty in `.env.example`, secrets created out of band) get a placeholder.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from forge_testing.scaffolding import COMBOS, MANIFEST, Combo, run_scaffold

BROKERS = list(MANIFEST["options"]["broker"]["values"])
NAME = "acme"
# A value a user puts in for a secret the deployment leaves to them (long enough for JWT).
PLACEHOLDER = "placeholder-secret-value-of-at-least-32-bytes-long"
# Read by the process or the image, not by the settings classes.
PROCESS_VARIABLES = {"PROMETHEUS_MULTIPROC_DIR", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS"}
COMPOSE_VAR_RE = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)


@dataclass
class Unit:
    """One container: where it is declared, its environment, the settings class it loads."""

    label: str
    env: dict[str, str]
    module: str
    cls: str
    paths: list[str]
    # Names the deployment file sets for this container itself (not a shared .env file):
    # each must be a setting, or it configures nothing.
    declared: list[str] = field(default_factory=list)


@dataclass
class DeploymentUnderCheck:
    """A generated project whose deployment files are checked, and what was found."""

    name: str
    root: Path
    tier: str
    combo: Combo | None = None
    problems: list[str] = field(default_factory=list)
    units: int = 0


def generate(tmp: Path, label: str, *args: str) -> Path:
    out = tmp / label
    result = run_scaffold("--name", NAME, "--out", out, *args)
    assert result.returncode == 0, result.stderr
    # No note asks for hand edits (a layer still being written is only announced).
    notes = [line for line in result.stderr.splitlines() if "has no files yet" not in line]
    assert not notes, result.stderr
    return out


PROJECTS = [(f"tier1-{combo.name}", combo) for combo in COMBOS] + [
    (f"tier{tier}-{broker}", None) for tier in ("2", "3") for broker in BROKERS
]


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DeploymentUnderCheck]:
    tmp = tmp_path_factory.mktemp("deployments")
    built: dict[str, DeploymentUnderCheck] = {}
    for label, combo in PROJECTS:
        if combo is not None:
            args = combo.flags()[4:]  # without --tier 1 --name
            built[label] = DeploymentUnderCheck(label, generate(tmp, label, *args), "1", combo)
        else:
            tier, broker = label[4], label.split("-", 1)[1]
            root = generate(tmp, label, "--tier", tier, "--broker", broker)
            built[label] = DeploymentUnderCheck(label, root, tier)
    broken = DeploymentUnderCheck("broken-tier2", tmp / "broken-tier2", "2")
    shutil.copytree(built["tier2-redis"].root, broken.root)
    compose = broken.root / "docker-compose.yml"
    text = compose.read_text()
    secret = text.index("      OIDC_ISSUER:", text.index("  worker:"))
    compose.write_text(text[:secret] + text[text.index("\n", secret) + 1 :])
    built[broken.name] = broken
    check_all(list(built.values()))
    return built


def dotenv(path: Path) -> dict[str, str]:
    """`.env.example` as `cp .env.example .env` gives it, empty values filled in by the user."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip() or PLACEHOLDER
    # Compose interpolates ${...} inside .env too.
    return {key: interpolate(value, values, "<.env>", []) for key, value in values.items()}


def interpolate(value: str, variables: dict[str, str], where: str, problems: list[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if name not in variables:
            if op in (":-", "-"):
                return arg
            problems.append(f"{where}: ${{{name}}} is not set in .env.example")
            return PLACEHOLDER
        return variables[name]

    return COMPOSE_VAR_RE.sub(replace, value.replace("$$", "\0")).replace("\0", "$")


def compose_units(project: DeploymentUnderCheck) -> list[Unit]:
    root = project.root
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    env_file = dotenv(root / ".env.example")
    services: dict[str, Any] = compose["services"]
    problems = project.problems
    declared_volumes = set(compose.get("volumes") or {})
    declared_networks = set(compose.get("networks") or {})
    used_volumes: set[str] = set()
    units = []
    for name, service in services.items():
        where = f"docker-compose.yml services.{name}"
        for dependency in service.get("depends_on") or {}:
            if dependency not in services:
                problems.append(f"{where}: depends_on {dependency!r}, which is not a service")
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                used_volumes.add(source)
                if source not in declared_volumes:
                    problems.append(f"{where}: volume {source!r} is not declared")
        for network in service.get("networks") or []:
            if network not in declared_networks:
                problems.append(f"{where}: network {network!r} is not declared")
        for text in json.dumps(service).split('"'):
            interpolate(text, env_file, where, problems)
        if "build" not in service:
            continue
        if "user_service.keys" in " ".join(service.get("command") or []):
            # The one-shot key tool: it reads JWT_PRIVATE_KEY_FILE alone, not the settings.
            assert set(service.get("environment") or {}) == {"JWT_PRIVATE_KEY_FILE"}, where
            continue
        env: dict[str, str] = {}
        files = service.get("env_file") or []
        for entry in [files] if isinstance(files, str) else files:
            path, required = (
                (entry, True)
                if isinstance(entry, str)
                else (entry["path"], entry.get("required", True))
            )
            if path in (".env", "./.env"):
                env.update(env_file)
            elif required:
                problems.append(f"{where}: env_file {path} is not made by the README's steps")
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        env.update(
            {k: interpolate(str(v), env_file, where, problems) for k, v in environment.items()}
        )
        units.append(settings_unit(project, where, name, service, env))
        units[-1].declared = list(environment)
    for volume in declared_volumes - used_volumes:
        problems.append(f"docker-compose.yml: volume {volume!r} is declared but never used")
    return units


def settings_unit(
    project: DeploymentUnderCheck, where: str, name: str, service: dict[str, Any], env: dict[str, str]
) -> Unit:
    root = project.root
    command = " ".join(service.get("command") or [])
    migrate = "alembic" in command
    if project.tier == "1":
        package = NAME
        paths = [str(root / "src")]
        if migrate:
            return Unit(where, env, f"{package}.db.session", "DatabaseSettings", paths)
        return Unit(where, env, f"{package}.config", "Settings", paths)
    build = service["build"]
    owner = build["args"]["SERVICE"] if isinstance(build, dict) else Path(build).name
    shared = [str(root / "shared" / part / "src") for part in ("common", "platform")]
    if owner == "gateway":
        return Unit(where, env, "microservice_gateway", "GatewaySettings", [str(root / "gateway")])
    package = owner.replace("-", "_")
    paths = [str(root / "services" / owner / "src"), *shared]
    if owner == "agent-service":
        if migrate:
            return Unit(where, env, f"{package}.db.session", "DatabaseSettings", paths)
        # The API process also runs the bus integration (system_settings: the app's and
        # the bus's); the worker only the app.
        module = f"{package}.config" if "worker" in command else f"{package}.system_settings"
        return Unit(where, env, module, "Settings", paths)
    if migrate:
        return Unit(where, env, f"{NAME}_platform.settings", "DatabaseSettings", paths)
    return Unit(where, env, f"{package}.config", "Settings", paths)


def k8s_units(project: DeploymentUnderCheck, folder: Path) -> list[Unit]:
    problems = project.problems
    documents = []
    for path in sorted(folder.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                documents.append((path.name, document))
    kustomization = folder / "kustomization.yaml"
    if kustomization.exists():
        for resource in yaml.safe_load(kustomization.read_text())["resources"]:
            if not (folder / resource).exists():
                problems.append(f"{folder.name}/kustomization.yaml: {resource} does not exist")
    maps = {
        d["metadata"]["name"]: d.get("data", {}) for _, d in documents if d["kind"] == "ConfigMap"
    }
    secrets = {
        d["metadata"]["name"]: d.get("stringData", {})
        for _, d in documents
        if d["kind"] == "Secret"
    }
    units = []
    for file, document in documents:
        if document["kind"] not in ("Deployment", "Job"):
            continue
        for container in document["spec"]["template"]["spec"]["containers"]:
            where = f"{folder.name}/{file} {document['metadata']['name']}/{container['name']}"
            env: dict[str, str] = {}
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    name = source["configMapRef"]["name"]
                    if name not in maps:
                        problems.append(f"{where}: ConfigMap {name} is not in {folder.name}/")
                    env.update({k: str(v) for k, v in maps.get(name, {}).items()})
                if "secretRef" in source:
                    name = source["secretRef"]["name"]
                    if name not in secrets:
                        problems.append(f"{where}: Secret {name} has no example in {folder.name}/")
                    env.update(
                        {
                            k: PLACEHOLDER
                            if "CHANGE_ME" in str(v) and k.endswith(("SECRET", "KEY"))
                            else str(v)
                            for k, v in secrets.get(name, {}).items()
                        }
                    )
            declared = [
                key
                for source in container.get("envFrom", [])
                if "configMapRef" in source
                for key in maps.get(source["configMapRef"]["name"], {})
            ]
            declared += [item["name"] for item in container.get("env", [])]
            for item in container.get("env", []):
                env[item["name"]] = str(item["value"]) if "value" in item else PLACEHOLDER
            command = " ".join(container.get("command") or [])
            service = {"command": container.get("command") or []}
            if project.tier == "1":
                units.append(settings_unit(project, where, container["name"], service, env))
                units[-1].declared = declared
            else:
                # The image names the service (a worker runs its service's image).
                owner = container["image"].rsplit("/", 1)[-1].split(":", 1)[0]
                service["build"] = "gateway" if owner == "gateway" else f"./services/{owner}"
                if (project.root / "services" / owner).is_dir() or owner == "gateway":
                    units.append(settings_unit(project, where, owner, service, env))
                    units[-1].declared = declared
                elif "alembic" not in command:
                    problems.append(f"{where}: {owner} is not a service of this system")
    return units


CHILD = r"""
import importlib, json, os, sys
units = json.load(sys.stdin)
results = []
loaded_from = None
for unit in units:
    if unit["root"] != loaded_from:
        # Every project names its package `acme`: forget the previous project's modules.
        for name, module in list(sys.modules.items()):
            if loaded_from and (getattr(module, "__file__", None) or "").startswith(loaded_from):
                del sys.modules[name]
        # Settings modules may import the project's metrics, which register in the process's
        # one Prometheus registry: the next project's identical names would be duplicates.
        registry = getattr(sys.modules.get("prometheus_client"), "REGISTRY", None)
        for collector in list(getattr(registry, "_collector_to_names", {})):
            registry.unregister(collector)
        loaded_from = unit["root"]
    sys.path[:0] = unit["paths"]
    os.environ.clear()
    os.environ.update(unit["env"])
    try:
        cls = getattr(importlib.import_module(unit["module"]), unit["cls"])
        fields = {name.upper(): str(info.default) for name, info in cls.model_fields.items()}
        try:
            cls(_env_file=None)
            error = None
        except Exception as exc:
            error = str(exc)
    finally:
        del sys.path[: len(unit["paths"])]
    results.append({"fields": fields, "error": error})
print(json.dumps(results))
"""


def collect(project: DeploymentUnderCheck) -> list[Unit]:
    units: list[Unit] = []
    if (project.root / "docker-compose.yml").exists():
        units += compose_units(project)
    if (project.root / "k8s").is_dir():
        units += k8s_units(project, project.root / "k8s")
    return units


def check_all(projects: list[DeploymentUnderCheck]) -> None:
    """Imports each project's settings classes in one child interpreter, then records what
    fails in each project's `problems`."""
    units = [(project, unit) for project in projects for unit in collect(project)]
    payload = json.dumps([{**unit.__dict__, "root": str(project.root)} for project, unit in units])
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=payload,
        capture_output=True,
        text=True,
        env={},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for (project, unit), result in zip(units, json.loads(done.stdout), strict=True):
        project.units += 1
        if result["error"]:
            project.problems.append(
                f"{unit.label}: {unit.module}.{unit.cls} fails with exactly its environment: "
                f"{result['error']}"
            )
        unknown = set(unit.declared) - set(result["fields"]) - PROCESS_VARIABLES
        # A migration container shares the app's environment; the app's unit checks it.
        if unknown and unit.cls != "DatabaseSettings":
            project.problems.append(
                f"{unit.label}: {sorted(unknown)} are not settings of {unit.module}.{unit.cls}"
            )
        # A URL left at its localhost default points nowhere inside a container.
        for name, default in result["fields"].items():
            if name.endswith("_URL") and "localhost" in default and name not in unit.env:
                project.problems.append(f"{unit.label}: {name} is not given (default {default})")


@pytest.mark.parametrize("label", [label for label, _ in PROJECTS])
def test_deployment_files_follow_the_options(projects: dict[str, DeploymentUnderCheck], label: str) -> None:
    project = projects[label]
    if project.combo is None or project.combo.deploy in ("compose", "k8s"):
        assert project.units, f"{label}: no container found in its compose or k8s files"
    assert not project.problems, "\n".join(project.problems)


def test_a_missing_variable_is_caught(projects: dict[str, DeploymentUnderCheck]) -> None:
    """The check fails when a container lacks a required setting (Tier 2's worker once had
    no JWT_SECRET, now OIDC_ISSUER): the fixture checked a copy of Tier 2 without it."""
    problems = projects["broken-tier2"].problems
    assert any("services.worker" in p and "oidc_issuer" in p for p in problems), problems


SIGNING = re.compile(r"JWT_SECRET|jwt_secret|PRIVATE_KEY|jwt-key")


@pytest.mark.parametrize("label", [f"tier{t}-{b}" for t in ("2", "3") for b in BROKERS])
def test_only_user_service_holds_the_signing_key(
    projects: dict[str, DeploymentUnderCheck], label: str
) -> None:
    """user-service alone can sign tokens: no other container gets a shared secret or the
    private key (compose, Kubernetes, Helm, Terraform); the others verify with its JWKS."""
    root = projects[label].root
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    holders = set()
    for name, service in compose["services"].items():
        text = json.dumps({k: service.get(k) for k in ("environment", "volumes", "secrets")})
        if SIGNING.search(text):
            holders.add(name)
        environment = service.get("environment") or {}
        for key in ("JWKS_URL", "OIDC_JWKS_URL"):
            if key in environment:
                assert environment[key].startswith("http://user-service:8000/"), (name, key)
    # user-service, and the one-shot service that creates its key in their shared volume.
    assert holders == {"user-service", "jwt-key"}, holders
    assert compose["services"]["jwt-key"].get("network_mode") == "none"
    assert "JWKS_URL" in compose["services"]["gateway"]["environment"]
    for path in sorted((root / "k8s").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if not document or document["kind"] not in ("Deployment", "Job"):
                continue
            pod = document["spec"]["template"]["spec"]
            containers = [c.get("env") for c in pod["containers"]]
            text = json.dumps({"env": containers, "volumes": pod.get("volumes")})
            owner = document["metadata"]["name"]
            assert bool(SIGNING.search(text)) == (owner == "user-service"), (path.name, owner)
    infrastructure = root / "infrastructure"
    if infrastructure.is_dir():  # Tier 3: Helm chart and Terraform
        for path in sorted(infrastructure.rglob("*")):
            if path.suffix in (".yaml", ".tf", ".tpl"):
                assert not SIGNING.search(path.read_text()), path


# Tier 3's own processes: the order APIs and the processes that run beside them.
ORDER_PROCESSES = ("order-command", "order-relay", "order-query", "order-projector")


@pytest.mark.parametrize("broker", BROKERS)
def test_tier3_deploys_the_order_services(
    projects: dict[str, DeploymentUnderCheck], broker: str
) -> None:
    """Compose and Kubernetes run every order process (their settings are checked above
    with the rest); the gateway routes to the order APIs."""
    project = projects[f"tier3-{broker}"]
    labels = [unit.label for unit in collect(project)]
    for process in ORDER_PROCESSES:
        assert f"docker-compose.yml services.{process}" in labels, labels
        assert any(label.startswith(f"k8s/orders.yaml {process}/") for label in labels), labels
    compose = yaml.safe_load((project.root / "docker-compose.yml").read_text())
    routes = json.loads(compose["services"]["gateway"]["environment"]["SERVICES"])
    assert (routes["orders"], routes["views"]) == (
        "http://order-command:8000",
        "http://order-query:8000",
    )
