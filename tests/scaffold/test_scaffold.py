"""The scaffold script itself: options, dry runs, refusals, rendering. Standard library only;
installing and running generated projects is tests/generated_tier1/'s job."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from forge_testing import SKILL
from forge_testing.scaffolding import MANIFEST, SCAFFOLD_SCRIPT, run_scaffold

TIER1_OPTIONS = {
    flag: list(spec["values"]) for flag, spec in MANIFEST["options"].items() if "1" in spec["tiers"]
}


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
    result = run_scaffold(*args, "--out", tmp_path / "out")
    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert not (tmp_path / "out").exists()


def test_tier_3_adds_the_cqrs_services_to_tier_2(tmp_path: Path) -> None:
    result = run_scaffold("--tier", "3", "--name", "shop", "--dry-run")
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


BROKER_SCHEMES = {"redis": "redis://", "rabbitmq": "amqp://", "kafka": "kafka://"}


@pytest.mark.parametrize("broker", list(BROKER_SCHEMES))
def test_readme_broker_url_follows_the_broker(broker: str, tmp_path: Path) -> None:
    """A Tier 2 README once exported a redis:// BROKER_URL whatever --broker said (the
    RabbitMQ system's tests then hung on a Redis URL)."""
    out = tmp_path / "out"
    result = run_scaffold("--tier", "2", "--name", "shop", "--broker", broker, "--out", out)
    assert result.returncode == 0, result.stderr
    readme = (out / "README.md").read_text()
    urls = re.findall(r'^export BROKER_URL="\$\{BROKER_URL:-(.*?)\}"', readme, re.MULTILINE)
    assert urls and all(url.startswith(BROKER_SCHEMES[broker]) for url in urls), urls


def test_tier_3_readme_describes_tier_3(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_scaffold("--tier", "3", "--name", "shop", "--out", out).returncode == 0
    readme = (out / "README.md").read_text()
    assert "(Tier 3)" in readme and "(Tier 2)" not in readme
    for app in (
        "order_command.main:create_app",
        "order_command.relay:create_app",
        "order_query.main:create_app",
        "order_query.projector:create_app",
    ):
        assert app in readme
    for service in ("order-command", "order-query"):
        assert f"(cd services/{service} && DATABASE_URL=" in readme
        assert f'-e "services/{service}[dev]"' in readme


def test_dry_run_lists_files_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "svc"
    result = run_scaffold("--name", "svc", "--out", out, "--dry-run")
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
    refused = run_scaffold("--name", "svc", "--out", out)
    assert refused.returncode == 1
    assert "not empty" in refused.stderr
    assert "--force" in refused.stderr
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]

    forced = run_scaffold("--name", "svc", "--out", out, "--force")
    assert forced.returncode == 0, forced.stderr
    assert (out / "keep.txt").read_text() == "mine"
    assert (out / "src" / "svc" / "main.py").is_file()
    # Nothing of the staging folder is left next to the target.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["svc"]


def test_default_output_folder_is_the_name(tmp_path: Path) -> None:
    result = run_scaffold("--name", "my-api", cwd=tmp_path)
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
    [(flag, value) for flag, values in TIER1_OPTIONS.items() for value in values],
)
def test_every_option_value_renders_completely(flag: str, value: str, tmp_path: Path) -> None:
    out = tmp_path / "acme-agents"
    result = run_scaffold("--name", "acme-agents", "--out", out, f"--{flag}", value)
    assert result.returncode == 0, result.stderr
    check_project(out, "acme-agents", "acme_agents")


def test_settings_in_env_example_match_the_config(tmp_path: Path) -> None:
    out = tmp_path / "svc"
    assert run_scaffold("--name", "svc", "--out", out).returncode == 0
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
    result = run_scaffold("--name", "plain", "--out", out, "--agent", "none")
    assert result.returncode == 0, result.stderr
    assert "--queue none" in result.stdout  # implied: no agent jobs to queue
    assert not (out / "src" / "plain" / "routes" / "agents.py").exists()
    assert not (out / "src" / "plain" / "agents").exists()
    dependencies = tomllib.loads((out / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [dep for dep in dependencies if dep.startswith("arq")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tier", "2", "--db", "mongodb"], "--db applies to --tier 1 only, not --tier 2"),
        (["--tier", "3", "--auth", "none"], "--auth applies to --tier 1 only, not --tier 3"),
        (["--tier", "2", "--deploy", "k8s"], "--deploy applies to --tier 1 only"),
        (["--tier", "2", "--queue", "celery"], "--queue applies to --tier 1 only"),
        (["--broker", "kafka"], "--broker applies to --tier 2 or 3 only, not --tier 1"),
        (["--tier", "2", "--agent", "none"], "--agent none applies to --tier 1 only"),
        (["--agent", "none", "--queue", "arq"], "--queue arq contradicts --agent none"),
    ],
)
def test_options_that_do_not_apply_are_usage_errors(
    args: list[str], message: str, tmp_path: Path
) -> None:
    result = run_scaffold(*args, "--out", tmp_path / "out")
    assert result.returncode == 2, result.stdout
    assert message in result.stderr
    assert not (tmp_path / "out").exists()


def load_script() -> Any:
    spec = importlib.util.spec_from_file_location("scaffold_fastapi_under_test", SCAFFOLD_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_conditional_lines_follow_the_options() -> None:
    script = load_script()
    context = {"tier": "1", "db": "postgres", "queue": "none", "auth": "jwt"}
    text = (
        "a: 1\n"
        "# forge:if db=postgres\n"
        "b: 2\n"
        "  # forge:if queue!=none\n"
        "c: 3\n"
        "  # forge:end\n"
        "d: 4  # forge:if auth=jwt|apikey\n"
        "e: 5  # forge:if auth=none\n"
        "# forge:end\n"
        "# forge:if db=mongodb|redis tier=1\n"
        "f: 6\n"
        "# forge:end\n"
        "# --8<-- [start:region]\n"
        "g: 7\n"
        "# --8<-- [end:region]\n"
    )
    assert script.apply_conditions(text, context, MANIFEST, "x.yaml") == "a: 1\nb: 2\nd: 4\ng: 7\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# forge:if db=oracle\n# forge:end\n", "x.yaml:1: condition 'db=oracle'"),
        ("a: 1\n# forge:if broker=kafka\n# forge:end\n", "x.yaml:2: condition 'broker=kafka'"),
        ("# forge:if db=postgres\n", "x.yaml:1: '# forge:if' without '# forge:end'"),
        ("# forge:end\n", "x.yaml:1: '# forge:end' without '# forge:if'"),
        ("# forge:if db:postgres\n# forge:end\n", "x.yaml:1: bad condition term"),
    ],
)
def test_bad_conditions_name_file_and_line(text: str, message: str) -> None:
    script = load_script()
    with pytest.raises(script.ScaffoldError, match=re.escape(message)):
        script.apply_conditions(text, {"tier": "1", "db": "postgres"}, MANIFEST, "x.yaml")


def test_manifest_layers_exist_and_every_layer_is_mounted() -> None:
    layers_dir = SKILL / "assets" / "scaffold" / "layers"
    named = {
        layer
        for spec in MANIFEST["options"].values()
        for value in spec["values"].values()
        for layer in value["layers"]
    }
    named |= {layer for tier in MANIFEST["tiers"].values() for layer in tier["layers"]}
    named |= set(MANIFEST["service_layers"])
    present = {path.name for path in layers_dir.iterdir() if path.is_dir()}
    assert not named - present, "the manifest names missing layers"
    assert not present - named, "layers no option or tier mounts"
    for spec in MANIFEST["options"].values():
        assert spec["default"] in spec["values"]


def skill_table_rows(first_cell: str, columns: int) -> dict[str, list[str]]:
    rows = {}
    for line in (SKILL / "SKILL.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == columns and cells[0].startswith(first_cell):
            rows[cells[0]] = cells
    return rows


def test_skill_md_option_tables_match_the_manifest() -> None:
    flag_rows = skill_table_rows("`--", 4)
    ask_rows = skill_table_rows("", 3)
    for flag, spec in MANIFEST["options"].items():
        row = flag_rows.get(f"`--{flag}`")
        assert row is not None, f"SKILL.md: no row for `--{flag}` in the Scaffold option table"
        assert re.findall(r"`([^`]+)`", row[1]) == list(spec["values"]), (
            f"SKILL.md: `--{flag}` values differ from manifest.json: {list(spec['values'])}"
        )
        assert row[2] == f"`{spec['default']}`", f"SKILL.md: `--{flag}` default"
        # The tiers cell: the option's tiers, then `value`: tiers for a value that narrows them.
        tiers, _, narrowed = row[3].partition("(")
        assert re.findall(r"\d", tiers) == spec["tiers"], (
            f"SKILL.md: `--{flag}` tiers are {spec['tiers']} in manifest.json, not {row[3]!r}"
        )
        for value, meta in spec["values"].items():
            if meta.get("tiers", spec["tiers"]) != spec["tiers"]:
                expected = f"`{value}`: {', '.join(meta['tiers'])}"
                assert expected in narrowed, f"SKILL.md: `--{flag}` tiers cell lacks {expected!r}"
        if "question" in spec:
            ask = ask_rows.get(spec["question"])
            assert ask is not None, f"SKILL.md: no '{spec['question']}' row in 'Ask first'"
            offered = [label.strip() for label in ask[1].split(",")]
            labels = [value["label"] for value in spec["values"].values()]
            assert offered == labels, f"SKILL.md '{spec['question']}': {offered} != {labels}"
            assert ask[2] == spec["values"][spec["default"]]["label"], spec["question"]


def test_skill_md_states_every_implication_of_the_manifest() -> None:
    text = (SKILL / "SKILL.md").read_text(encoding="utf-8")
    assert MANIFEST["implications"], "manifest.json: expected at least --agent none => --queue none"
    for rule in MANIFEST["implications"]:
        ((flag, value),) = rule["if"].items()
        for implied, implied_value in rule["then"].items():
            sentence = f"`--{flag} {value}` implies `--{implied} {implied_value}`"
            assert sentence in text, f"SKILL.md: say {sentence!r} near the option table"


def test_generated_files_carry_no_markers(tmp_path: Path) -> None:
    for tier in ("1", "3"):
        out = tmp_path / f"tier{tier}"
        assert run_scaffold("--tier", tier, "--name", "acme", "--out", out).returncode == 0
        for relative, content in generated_files(out).items():
            assert b"--8<--" not in content, relative
            assert b"forge:if" not in content and b"forge:end" not in content, relative


def test_control_files_act_at_any_depth(tmp_path: Path) -> None:
    out = tmp_path / "shop"
    assert run_scaffold("--tier", "3", "--name", "shop", "--out", out).returncode == 0
    command = tomllib.loads((out / "services" / "order-command" / "pyproject.toml").read_text())
    assert "pyyaml>=6.0.2" in command["project"]["optional-dependencies"]["dev"]
    assert command["project"]["description"].startswith("Order commands")
    query = tomllib.loads((out / "services" / "order-query" / "pyproject.toml").read_text())
    assert "httpx>=0.28.1" in query["project"]["dependencies"]
    for service in ("user-service", "notification-service", "order-command", "order-query"):
        package = service.replace("-", "_")
        ini = (out / "services" / service / "alembic.ini").read_text()
        assert f"script_location = {package}:migrations" in ini
        assert not (out / "services" / service / "_deps.txt").exists()


@pytest.mark.parametrize(
    ("path", "target"),
    [(SCAFFOLD_SCRIPT, "py310"), (Path(__file__), "py311")],
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
    script = load_script()
    context = {"tier": "1", "auth": "jwt", "db": "redis"}
    rendered = script.apply_conditions(README_WITH_CONDITIONS, context, MANIFEST, "README.md")
    assert rendered == "intro\njwt line\noutro\n"
    context = {"tier": "1", "auth": "apikey", "db": "mongodb"}
    rendered = script.apply_conditions(README_WITH_CONDITIONS, context, MANIFEST, "README.md")
    assert rendered == "intro\ndatabase line\noutro\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "<!-- forge:if auth=saml -->\nx\n<!-- forge:end -->\n",
            "README.md:1: condition 'auth=saml'",
        ),
        (
            "<!-- forge:if colour=red -->\n<!-- forge:end -->\n",
            "README.md:1: condition 'colour=red'",
        ),
        ("<!-- forge:if db=none -->\nx\n", "README.md:1: '# forge:if' without '# forge:end'"),
        ("x\n<!-- forge:end -->\n", "README.md:2: '# forge:end' without '# forge:if'"),
        ("text <!-- forge:if db=none -->\n", "README.md:1: malformed marker"),
    ],
)
def test_bad_readme_conditions_name_file_and_line(text: str, message: str) -> None:
    script = load_script()
    with pytest.raises(script.ScaffoldError, match=re.escape(message)):
        script.apply_conditions(
            text, {"tier": "1", "auth": "jwt", "db": "postgres"}, MANIFEST, "README.md"
        )


@pytest.mark.parametrize("flag", ["db", "auth", "queue"])
def test_generated_readmes_carry_no_condition_markers(flag: str, tmp_path: Path) -> None:
    for value in TIER1_OPTIONS[flag]:
        out = tmp_path / f"{flag}-{value}"
        result = run_scaffold("--name", "acme", f"--{flag}", value, "--out", out)
        assert result.returncode == 0, result.stderr
        readme = (out / "README.md").read_text()
        assert "forge:" not in readme


BUNDLE = (
    b"skillcheck-bundle 1\n"
    b"# comment\n"
    b"=== 644 6 tier1-base/a.txt\nalpha\n\n"
    b"=== 755 0 tier1-base/scripts/run.sh\n\n"
    b"=== 644 4 tier3/__pycache__/x.pyc\nxxxx\n"
)


def test_layers_are_read_from_the_bundle_when_the_folder_is_absent(tmp_path: Path) -> None:
    script = load_script()
    bundle = tmp_path / "layers.bundle.txt"
    bundle.write_bytes(BUNDLE)
    layers = script.Layers(folder=tmp_path / "layers", bundle=bundle)
    files = layers.files("tier1-base")
    assert [(f.relative, f.data) for f in files] == [("a.txt", b"alpha\n"), ("scripts/run.sh", b"")]
    assert files[0].where == f"{bundle}:3 (tier1-base/a.txt)"
    assert layers.files("tier3") is None, "caches never count as layer files"
    # The folder, when present, wins, and gives the same records.
    (tmp_path / "layers" / "tier1-base").mkdir(parents=True)
    (tmp_path / "layers" / "tier1-base" / "a.txt").write_bytes(b"from the folder\n")
    folder_files = layers.files("tier1-base")
    assert [(f.relative, f.data) for f in folder_files] == [("a.txt", b"from the folder\n")]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b.replace(b"bundle 1", b"bundle 9"), ":1: not a bundle"),
        (lambda b: b.replace(b"=== 755", b"=== 700"), ":6: expected '=== <mode> <bytes> <path>'"),
        (lambda b: b[:60], ":3: tier1-base/a.txt is truncated"),
        # One byte short: the content's own line break ends it, the real one is no header.
        (lambda b: b.replace(b"=== 644 6 ", b"=== 644 5 "), ":5: expected '=== <mode>"),
    ],
    ids=["magic", "mode", "cut", "size"],
)
def test_a_damaged_bundle_is_an_error_naming_its_line(
    tmp_path: Path, damage: Any, message: str
) -> None:
    script = load_script()
    bundle = tmp_path / "layers.bundle.txt"
    bundle.write_bytes(damage(BUNDLE))
    with pytest.raises(script.ScaffoldError, match=re.escape(f"{bundle}{message}")):
        script.Layers(folder=tmp_path / "layers", bundle=bundle).files("tier1-base")


def test_neither_folder_nor_bundle_says_to_reinstall(tmp_path: Path) -> None:
    script = load_script()
    layers = script.Layers(folder=tmp_path / "layers", bundle=tmp_path / "layers.bundle.txt")
    with pytest.raises(script.ScaffoldError, match="reinstall the skill"):
        layers.files("tier1-base")
