"""The scaffold script itself: options, dry runs, refusals, rendering. Standard library only;
installing and running generated projects is tests/e2e_tier1/'s job."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "skill" / "fastapi-forge" / "scripts" / "scaffold_fastapi.py"
OPTION_VALUES = {
    "db": ["postgres", "mongodb", "redis", "none"],
    "auth": ["jwt", "oauth2", "apikey", "none"],
    "queue": ["arq", "celery", "none"],
    "agent": [
        "anthropic",
        "claude-agent-sdk",
        "openai-agents",
        "langgraph",
        "crewai",
        "custom",
        "none",
    ],
    "deploy": ["compose", "k8s", "cloudrun", "serverless"],
}


def scaffold(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


def generated_files(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file()
    }


@pytest.mark.parametrize(
    "args",
    [
        ["--db", "oracle"],
        ["--auth", "basic"],
        ["--queue", "rq"],
        ["--agent", "autogen"],
        ["--deploy", "heroku"],
        ["--tier", "4"],
        ["--name", "9lives"],
        ["--name", "has space"],
        ["--name", "json"],
    ],
)
def test_bad_options_are_usage_errors(args: list[str], tmp_path: Path) -> None:
    result = scaffold(*args, "--out", tmp_path / "out")
    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert not (tmp_path / "out").exists()


def test_tier_3_adds_the_cqrs_services_to_tier_2(tmp_path: Path) -> None:
    result = scaffold("--tier", "3", "--name", "shop", "--dry-run")
    assert result.returncode == 0, result.stderr
    listed = {line.strip() for line in result.stdout.splitlines() if line.startswith("  ")}
    assert {
        "services/user-service/pyproject.toml",  # Tier 2 is all there
        "services/order-command/src/order_command/relay.py",
        "services/order-query/src/order_query/rebuild.py",
        "shared/common/src/shop_common/orders.py",
        "infrastructure/helm/shop/Chart.yaml",
        "docs/api-spec.yaml",
    } <= listed
    assert not any("forge" in path for path in listed)


def test_dry_run_lists_files_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "svc"
    result = scaffold("--name", "svc", "--out", out, "--dry-run")
    assert result.returncode == 0, result.stderr
    listed = {line.strip() for line in result.stdout.splitlines() if line.startswith("  ")}
    assert {
        "pyproject.toml",
        "src/svc/main.py",
        "alembic.ini",
        ".env.example",
    } <= listed
    assert not out.exists()


def test_refuses_a_non_empty_folder_without_force(tmp_path: Path) -> None:
    out = tmp_path / "svc"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    refused = scaffold("--name", "svc", "--out", out)
    assert refused.returncode == 1
    assert "not empty" in refused.stderr
    assert "--force" in refused.stderr
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]

    forced = scaffold("--name", "svc", "--out", out, "--force")
    assert forced.returncode == 0, forced.stderr
    assert (out / "keep.txt").read_text() == "mine"
    assert (out / "src" / "svc" / "main.py").is_file()
    # Nothing of the staging folder is left next to the target.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["svc"]


def test_default_output_folder_is_the_name(tmp_path: Path) -> None:
    result = scaffold("--name", "my-api", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "my-api" / "src" / "my_api" / "main.py").is_file()


def check_project(root: Path, name: str, package: str) -> None:
    files = generated_files(root)
    for relative, content in files.items():
        assert "forge_app" not in relative
        assert b"forge_app" not in content, relative
        assert b"forge-app" not in content, relative
        assert not relative.endswith(("_deps.txt", "_env.txt", "_remove.txt")), relative
        if relative.endswith(".py"):
            ast.parse(content, filename=relative)
    pyproject = tomllib.loads(files["pyproject.toml"].decode())
    assert pyproject["project"]["name"] == name
    assert pyproject["project"]["requires-python"] == ">=3.11"
    dependencies = pyproject["project"]["dependencies"]
    names = [dep.split(">")[0].split("[")[0].split("=")[0] for dep in dependencies]
    assert len(names) == len(set(names)), "duplicate requirement"
    assert all(any(op in dep for op in (">=", "==", "~=")) for dep in dependencies)
    assert (root / "src" / package / "main.py").is_file()
    env_keys = [
        line.split("=", 1)[0]
        for line in files[".env.example"].decode().splitlines()
        if line and not line.startswith("#")
    ]
    assert len(env_keys) == len(set(env_keys)), "a setting is listed twice in .env.example"


@pytest.mark.parametrize(
    ("flag", "value"),
    [(flag, value) for flag, values in OPTION_VALUES.items() for value in values],
)
def test_every_option_value_renders_completely(flag: str, value: str, tmp_path: Path) -> None:
    out = tmp_path / "acme-agents"
    result = scaffold("--name", "acme-agents", "--out", out, f"--{flag}", value)
    assert result.returncode == 0, result.stderr
    check_project(out, "acme-agents", "acme_agents")


def test_settings_in_env_example_match_the_config(tmp_path: Path) -> None:
    out = tmp_path / "svc"
    assert scaffold("--name", "svc", "--out", out).returncode == 0
    env = (out / ".env.example").read_text()
    for key in (
        "DATABASE_URL",
        "JWT_SECRET",
        "REDIS_URL",
        "AGENT_TIMEOUT_SECONDS",
        "QUEUE_NAME",
    ):
        assert f"\n{key}=" in env, key


def test_agent_none_has_no_agent_code(tmp_path: Path) -> None:
    out = tmp_path / "plain"
    result = scaffold("--name", "plain", "--out", out, "--agent", "none")
    assert result.returncode == 0, result.stderr
    assert "ignored" in result.stderr  # the default --queue arq does not apply
    assert not (out / "src" / "plain" / "routes" / "agents.py").exists()
    assert not (out / "src" / "plain" / "agents").exists()
    dependencies = tomllib.loads((out / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [dep for dep in dependencies if dep.startswith("arq")]


def test_deployment_files_that_cannot_follow_an_option_are_named(
    tmp_path: Path,
) -> None:
    default = scaffold("--name", "stack", "--dry-run")
    assert "assumes PostgreSQL" not in default.stderr
    assert "runs a job worker" not in default.stderr
    trimmed = scaffold(
        "--name",
        "stack",
        "--db",
        "redis",
        "--queue",
        "none",
        "--deploy",
        "k8s",
        "--dry-run",
    )
    assert trimmed.returncode == 0, trimmed.stderr
    assert "k8s/ assumes PostgreSQL: with --db redis, remove migration-job.yaml" in trimmed.stderr
    assert "k8s/ runs a job worker: without a queue, remove worker-deployment.yaml" in (
        trimmed.stderr
    )
    serverless = scaffold(
        "--name",
        "stack",
        "--db",
        "none",
        "--agent",
        "custom",
        "--deploy",
        "serverless",
        "--dry-run",
    )
    assert "note:" not in serverless.stderr


@pytest.mark.parametrize(
    ("path", "target"),
    [(SCRIPT, "py310"), (Path(__file__), "py311")],
    ids=["scaffold_fastapi.py", "test_scaffold.py"],
)
def test_scaffold_code_is_ruff_clean(path: Path, target: str) -> None:
    # The generated projects' settings: line length 100; the script also runs on 3.10.
    common = ["--isolated", "--line-length", "100", "--target-version", target]
    check = [*common, "--select", "E,F,W,I,UP,B,SIM,RUF"]
    for args in (
        ["check", *check, str(path)],
        ["format", "--check", *common, str(path)],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def load_script() -> object:
    import importlib.util

    spec = importlib.util.spec_from_file_location("scaffold_fastapi", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["scaffold_fastapi"] = module
    spec.loader.exec_module(module)
    return module


README_WITH_CONDITIONS = """intro
<!-- forge:if auth=jwt -->
jwt line
<!-- forge:end -->
<!-- forge:if db=postgres|mongodb -->
database line
<!-- forge:end -->
outro
"""


def test_readme_conditions_keep_only_the_chosen_options() -> None:
    script: Any = load_script()
    rendered = script.render_conditionals(
        README_WITH_CONDITIONS, {"auth": "jwt", "db": "redis"}, "README.md"
    )
    assert rendered == "intro\njwt line\noutro\n"
    rendered = script.render_conditionals(
        README_WITH_CONDITIONS, {"auth": "apikey", "db": "mongodb"}, "README.md"
    )
    assert rendered == "intro\ndatabase line\noutro\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- forge:if auth=saml -->\nx\n<!-- forge:end -->\n", "README.md:1: forge:if auth=saml"),
        ("<!-- forge:if colour=red -->\n<!-- forge:end -->\n", "no option --colour"),
        ("<!-- forge:if db=none -->\nx\n", "README.md:1: forge:if never closed"),
        ("x\n<!-- forge:end -->\n", "README.md:2: forge:end without a forge:if"),
        ("<!-- forge:if db=none -->\n<!-- forge:if auth=jwt -->\n", "README.md:2: forge:if inside"),
        ("text <!-- forge:if db=none -->\n", "README.md:1: malformed marker"),
    ],
)
def test_bad_readme_conditions_name_file_and_line(text: str, message: str) -> None:
    script: Any = load_script()
    with pytest.raises(script.ScaffoldError, match=message.replace("|", r"\|")):
        script.render_conditionals(text, {"auth": "jwt", "db": "postgres"}, "README.md")


@pytest.mark.parametrize("flag", ["db", "auth", "queue"])
def test_generated_readmes_carry_no_condition_markers(flag: str, tmp_path: Path) -> None:
    for value in OPTION_VALUES[flag]:
        out = tmp_path / f"{flag}-{value}"
        result = scaffold("--name", "acme", f"--{flag}", value, "--out", out)
        assert result.returncode == 0, result.stderr
        readme = (out / "README.md").read_text()
        assert "forge:" not in readme
