"""action.yml, the composite GitHub Action: its steps run here as GitHub runs them
(`bash --noprofile --norc -eo pipefail`, the inputs given through the step's `env:`), with
the inputs a workflow would pass. GitHub itself is not here; what is tested is every line of
the action's own scripts, the inputs it declares and the exit status a job would get."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from forge_testing import REPO_ROOT

from .skills import CRATE_VERSION, RELEASE_BINARY, build_release_binary, write_skill

ACTION: dict[str, Any] = yaml.safe_load((REPO_ROOT / "action.yml").read_text())
STEPS: dict[str, dict[str, Any]] = {
    step["name"]: step for step in ACTION["runs"]["steps"]
}
EXPRESSION = re.compile(r"\$\{\{\s*([a-z_.-]+)\s*\}\}")


def test_declares_the_documented_inputs_and_never_pastes_them_into_a_script() -> None:
    assert ACTION["runs"]["using"] == "composite"
    inputs = ACTION["inputs"]
    assert set(inputs) == {"paths", "target", "deny-warnings", "sarif-file", "install"}
    assert (
        inputs["paths"]["default"] == "."
        and inputs["deny-warnings"]["default"] == "false"
    )
    for step in STEPS.values():
        assert step["shell"] == "bash"
        # An input pasted into `run:` would be shell code; through `env:` it is data.
        assert "${{" not in step["run"], step["name"]


def _run_step(
    name: str,
    inputs: dict[str, str],
    *,
    cwd: Path,
    temp: Path,
    path: str,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    step = STEPS[name]
    values = {k: str(v.get("default", "")) for k, v in ACTION["inputs"].items()}
    values.update(inputs)
    context = {
        **{f"inputs.{k}": v for k, v in values.items()},
        "github.action_path": str(REPO_ROOT),
        "runner.temp": str(temp),
    }
    env = {
        "PATH": path,
        "HOME": os.environ["HOME"],
        "GITHUB_PATH": str(temp / "github_path"),
    }
    env.update(extra_env or {})
    for key, expression in step.get("env", {}).items():
        env[key] = EXPRESSION.sub(lambda m: context[m.group(1)], expression)
    script = temp / "step.sh"
    script.write_text(step["run"])
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def path_with_skillcheck() -> str:
    build_release_binary()
    return f"{RELEASE_BINARY.parent}{os.pathsep}{os.environ['PATH']}"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "workspace"
    write_skill(root / "skills", "weekly-report")
    (tmp_path / "runner-temp").mkdir()
    return root


def _lint(
    workspace: Path, path: str, **inputs: str
) -> subprocess.CompletedProcess[str]:
    return _run_step(
        "skillcheck lint",
        inputs,
        cwd=workspace,
        temp=workspace.parent / "runner-temp",
        path=path,
    )


def test_clean_skills_pass_with_a_summary(
    workspace: Path, path_with_skillcheck: str
) -> None:
    result = _lint(workspace, path_with_skillcheck, paths="skills/")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("1 skill, 2 files: 0 errors, 0 warnings"), (
        result.stdout
    )


def test_errors_fail_the_step_as_annotations(
    workspace: Path, path_with_skillcheck: str
) -> None:
    write_skill(workspace / "skills", "weekly-report", broken=True)
    result = _lint(workspace, path_with_skillcheck, paths="skills/")
    assert result.returncode == 1
    assert result.stdout.startswith(
        "::error file=skills/weekly-report/SKILL.md,line=8,col=6,title=LNK001 broken-link::"
    ), result.stdout


def test_deny_warnings_and_target(workspace: Path, path_with_skillcheck: str) -> None:
    # An orphan file is a warning; `claude` in the name is an error only for claude.ai.
    write_skill(workspace / "skills", "claude-notes")
    (workspace / "skills" / "claude-notes" / "references" / "old.md").write_text(
        "# Old\n"
    )

    default = _lint(workspace, path_with_skillcheck, paths="skills")
    assert default.returncode == 0, default.stdout
    assert (
        "::warning file=skills/claude-notes/references/old.md,title=STR002"
        in default.stdout
    )

    denied = _lint(
        workspace, path_with_skillcheck, paths="skills", **{"deny-warnings": "true"}
    )
    assert denied.returncode == 1, denied.stdout

    upload = _lint(workspace, path_with_skillcheck, paths="skills", target="claude-ai")
    assert upload.returncode == 1
    assert "title=CAI001 name-reserved-word::" in upload.stdout, upload.stdout


def test_paths_one_per_line_or_several_on_a_line(
    workspace: Path, path_with_skillcheck: str
) -> None:
    write_skill(workspace / "more", "second-skill")
    write_skill(workspace / "more", "third-skill")
    result = _lint(
        workspace,
        path_with_skillcheck,
        paths="skills/weekly-report\nmore/second-skill  more/third-skill\n",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("3 skills, 6 files: 0 errors"), result.stdout


def test_sarif_file_is_written_and_the_annotated_run_decides(
    workspace: Path, path_with_skillcheck: str
) -> None:
    write_skill(workspace / "skills", "weekly-report", broken=True)
    sarif = workspace / "reports" / "skillcheck.sarif"
    result = _lint(
        workspace, path_with_skillcheck, paths="skills", **{"sarif-file": str(sarif)}
    )
    assert result.returncode == 1
    assert "::error file=skills/weekly-report/SKILL.md" in result.stdout
    run = json.loads(sarif.read_text())["runs"][0]
    assert [r["ruleId"] for r in run["results"]] == ["LNK001"]


def test_a_bad_deny_warnings_value_is_refused(
    workspace: Path, path_with_skillcheck: str
) -> None:
    result = _lint(workspace, path_with_skillcheck, **{"deny-warnings": "yes"})
    assert result.returncode == 2
    assert result.stdout.startswith(
        "::error title=skillcheck action::deny-warnings must be"
    )


def test_skillcheck_missing_fails_the_step(workspace: Path) -> None:
    result = _lint(workspace, "/usr/bin:/bin", paths="skills")
    assert result.returncode == 127, result.stdout + result.stderr


def test_install_step_builds_from_the_action_checkout(
    workspace: Path, path_with_skillcheck: str
) -> None:
    # Skipped by `install: false`; otherwise it installs into the runner's temp folder and
    # puts that on the job's PATH. The shared target directory makes cargo reuse the release
    # build instead of compiling again.
    step = STEPS["Install skillcheck"]
    assert step["if"] == "inputs.install == 'true'"
    temp = workspace.parent / "runner-temp"
    result = _run_step(
        "Install skillcheck",
        {},
        cwd=workspace,
        temp=temp,
        path=os.environ["PATH"],
        extra_env={"CARGO_TARGET_DIR": str(REPO_ROOT / "target")},
    )
    assert result.returncode == 0, result.stderr
    bin_dir = temp / "skillcheck" / "bin"
    assert (temp / "github_path").read_text() == f"{bin_dir}\n"
    version = subprocess.run(
        [bin_dir / "skillcheck", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip() == f"skillcheck {CRATE_VERSION}"
