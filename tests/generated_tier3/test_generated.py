"""The generated Tier 3 files check out: ruff, each package's own tests, the committed
OpenAPI equal to the apps' live one, and the infrastructure files (Terraform, Helm chart,
Prometheus rules and the Grafana dashboard, whose metrics the services really export)."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import hcl2
import pytest
import yaml
from forge_testing import REPO_ROOT, run, throwaway_database, wait_for

from .conftest import Build
from .system import NAME, Orders

pytestmark = pytest.mark.e2e
GATEWAY_SOURCE = (
    REPO_ROOT / "skill/fastapi-forge/assets/templates/microservice_gateway.py"
)


@pytest.mark.parametrize(
    "package", ["shared/common", "services/order-command", "services/order-query"]
)
def test_ruff_clean(tier3: Build, package: str) -> None:
    ruff = str(tier3.venv.bin("ruff"))
    run([ruff, "check", "--no-cache", "."], cwd=tier3.project / package)
    run([ruff, "format", "--check", "--no-cache", "."], cwd=tier3.project / package)


def test_export_script_is_ruff_clean_and_the_spec_is_current(tier3: Build) -> None:
    ruff = str(tier3.venv.bin("ruff"))
    run([ruff, "check", "--no-cache", "--isolated", "scripts"], cwd=tier3.project)
    run(
        [ruff, "format", "--check", "--no-cache", "--isolated", "scripts"],
        cwd=tier3.project,
    )
    out = run(
        [str(tier3.venv.python), "scripts/export_openapi.py", "--check"],
        cwd=tier3.project,
        env=tier3.env(),
    ).stdout
    assert "matches the apps" in out
    spec = yaml.safe_load((tier3.project / "docs" / "api-spec.yaml").read_text())
    assert spec["info"]["title"] == f"{NAME} orders API"
    assert {"/orders", "/orders/{order_id}/confirm", "/views/orders/{order_id}"} <= set(
        spec["paths"]
    )


@pytest.mark.parametrize("service", ["order-command", "order-query"])
def test_service_tests(
    tier3: Build, service: str, pg_admin_url: str, redis_broker_url: str
) -> None:
    with throwaway_database(pg_admin_url, prefix="e2e3_own") as database_url:
        env = tier3.env() | {
            "DATABASE_URL": database_url,
            "BROKER_URL": redis_broker_url,
        }
        run(
            [str(tier3.venv.python), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
            cwd=tier3.project / "services" / service,
            env=env,
        )


def test_shared_common_tests(tier3: Build) -> None:
    run(
        [str(tier3.venv.python), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tier3.project / "shared" / "common",
        env=tier3.env(),
    )


def test_terraform_skeleton_parses_and_is_formatted(tier3: Build) -> None:
    folder = tier3.project / "infrastructure" / "terraform"
    blocks: dict[str, list[object]] = {}
    for tf in sorted(folder.glob("*.tf")):
        with tf.open() as handle:
            for key, value in hcl2.load(handle).items():
                blocks.setdefault(key, []).extend(value)
    # python-hcl2 8 keeps the quotes of block labels.
    declared = {str(name).strip('"') for block in blocks["variable"] for name in block}  # type: ignore[union-attr]
    used = set(
        re.findall(
            r"var\.([a-z_]+)", "".join(p.read_text() for p in folder.glob("*.tf"))
        )
    )
    assert used == declared, (
        "every variable declared is used and every one used is declared"
    )
    chart = (folder / "../helm" / NAME).resolve()
    assert chart.is_dir(), "helm_release points at the chart"
    terraform = shutil.which("terraform")
    if terraform is not None:  # fmt needs no providers and no network
        run(
            [terraform, "fmt", "-check", "-diff", "-recursive", str(folder)], cwd=folder
        )


def helm_paths(values: object, prefix: str = "") -> set[str]:
    found = {prefix} if prefix else set()
    if isinstance(values, dict):
        for key, value in values.items():
            found |= helm_paths(value, f"{prefix}.{key}")
    return found


def test_helm_chart_is_consistent(tier3: Build) -> None:
    """Cross-file checks `helm lint` does not make: values, includes, modules exist."""
    chart_dir = tier3.project / "infrastructure" / "helm" / NAME
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == chart_dir.name
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])
    values = yaml.safe_load((chart_dir / "values.yaml").read_text())
    known = helm_paths(values)
    templates = {p.name: p.read_text() for p in (chart_dir / "templates").iterdir()}
    defined = set(re.findall(r'{{-? define "([^"]+)"', templates["_helpers.tpl"]))
    for name, text in templates.items():
        assert text.count("{{") == text.count("}}"), name
        actions = re.findall(r"{{-?\s*(\w+)", text)
        opened = sum(a in {"range", "if", "with", "define"} for a in actions)
        assert opened == actions.count("end"), f"{name}: unbalanced blocks"
        for path in re.findall(r"\$?\.Values((?:\.\w+)+)", text):
            assert path in known, f"{name}: .Values{path} is not in values.yaml"
        for include in re.findall(r'include "([^"]+)"', text):
            assert include in defined, f"{name}: {include} is not defined"
    for component in values["components"].values():
        assert component["database"] in values["secrets"]
        assert (tier3.project / "services" / component["image"]).is_dir()
        module = component["app"].split(":")[0].replace(".", "/")
        folder = tier3.project / "services" / component["image"] / "src"
        assert (folder / f"{module}.py").is_file(), component["app"]


def test_helm_lints_and_renders_manifests_that_validate(tier3: Build) -> None:
    """The real helm (fetched by scripts/helm) lints the chart, and what it renders passes
    the Kubernetes 1.31 schemas strictly."""
    helm = (
        run([str(REPO_ROOT / "scripts/helm")], cwd=REPO_ROOT).stdout.strip().splitlines()[-1]
    )
    chart_dir = tier3.project / "infrastructure" / "helm" / NAME
    run([helm, "lint", "--strict", str(chart_dir)], cwd=tier3.project)
    rendered = run([helm, "template", NAME, str(chart_dir)], cwd=tier3.project).stdout
    kinds = {doc["kind"] for doc in yaml.safe_load_all(rendered) if doc}
    assert {"Deployment", "Service", "Job"} <= kinds, kinds
    manifest = tier3.project / "rendered-chart.yaml"
    manifest.write_text(rendered)
    # The test environment's own validator (tests/requirements.txt), with offline schemas.
    validate = str(Path(sys.executable).parent / "kubernetes-validate")
    run([validate, "--strict", "-k", "1.31.0", str(manifest)], cwd=tier3.project)


def metric_names(expression: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', "", expression)
    names = set(re.findall(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b", without_strings))
    return names - {"histogram_quantile"}


def test_alerts_and_dashboard_use_metrics_the_system_exports(
    tier3: Build, orders: Orders
) -> None:
    monitoring = tier3.project / "infrastructure" / "monitoring"
    prometheus = yaml.safe_load((monitoring / "prometheus.yml").read_text())
    for rule_file in prometheus["rule_files"]:
        assert (monitoring / rule_file).is_file()
    rules = [
        rule
        for group in yaml.safe_load((monitoring / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    ]
    assert {r["alert"] for r in rules} >= {
        "OutboxLag",
        "ProjectionLag",
        "CircuitBreakerOpen",
        "High5xxRate",
    }
    runbook = (tier3.project / "docs" / "runbook.md").read_text().lower()
    expressions = []
    for rule in rules:
        assert rule["labels"]["severity"] in {"page", "ticket"}
        anchor = rule["annotations"]["runbook"].split("#")[1]
        assert f"##{anchor}" in runbook.replace(" ", ""), anchor
        expressions.append(rule["expr"])
    dashboard = json.loads((monitoring / "grafana" / f"{NAME}-cqrs.json").read_text())
    expressions += [
        t["expr"] for panel in dashboard["panels"] for t in panel["targets"]
    ]

    # One command end to end, so every labelled series has been created.
    with orders.client("command") as client:
        assert client.post("/orders", json={"total": "3.00"}).status_code == 201
    exported: set[str] = set()

    def projected() -> bool:
        exported.clear()
        for process in orders.processes:
            exported.update(orders.metric_names(process))
        return "projection_delay_seconds_bucket" in exported

    wait_for(projected, "the projection metrics")
    gateway = GATEWAY_SOURCE.read_text()
    used = set().union(*(metric_names(e) for e in expressions))
    for name in sorted(used):
        if name.startswith("gateway_"):
            assert f'"{name.removesuffix("_total")}"' in gateway, name
        else:
            assert name in exported, f"{name} is not exported by any order process"
    assert len(used) >= 6
