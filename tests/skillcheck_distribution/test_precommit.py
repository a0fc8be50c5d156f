"""The pre-commit hooks of .pre-commit-hooks.yaml, run by pre-commit itself (from PyPI, in the
test environment) in a throwaway git repository, on a clean skill and then a broken one.

The `language: system` hooks use the release binary on PATH. The `language: python` hooks
are installed by pre-commit as a user gets them: it clones the hook repository at `rev` and
`pip install`s it, which builds skillcheck with maturin. That build is the slow part, so it
gets a target directory of its own (kept in target/ between runs) and a quick release
profile: what is tested is that the hooks install and run, not the optimiser.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from forge_testing import REPO_ROOT

from .hook_repo import init_user_repo, snapshot_hook_repo, stage_all
from .skills import RELEASE_BINARY, build_release_binary, write_skill

PRE_COMMIT = REPO_ROOT / ".venv" / "bin" / "pre-commit"
QUICK_BUILD = {
    "CARGO_TARGET_DIR": str(REPO_ROOT / "target" / "pre-commit-hooks"),
    "CARGO_PROFILE_RELEASE_LTO": "false",
    "CARGO_PROFILE_RELEASE_CODEGEN_UNITS": "16",
    "CARGO_PROFILE_RELEASE_OPT_LEVEL": "0",
}


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    build_release_binary()
    return snapshot_hook_repo(tmp_path_factory.mktemp("hooks") / "skillcheck.git")


def _config(repo: Path, rev: str, suffix: str) -> str:
    return f"""\
repos:
  - repo: {repo}
    rev: {rev}
    hooks:
      - id: skillcheck-lint{suffix}
        args: [--deny-warnings, skills]
      - id: skillcheck-pack-check{suffix}
        args: [skills/demo-skill, -o, dist/demo-skill.skill]
"""


def _env(*, binary_on_path: bool) -> dict[str, str]:
    path = os.environ["PATH"]
    if binary_on_path:
        path = f"{RELEASE_BINARY.parent}{os.pathsep}{path}"
    env = {
        **os.environ,
        **QUICK_BUILD,
        "PATH": path,
        "PRE_COMMIT_HOME": str(REPO_ROOT / ".cache" / "pre-commit"),
        "PIP_CACHE_DIR": str(REPO_ROOT / ".cache" / "pip"),
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    env.pop("VIRTUAL_ENV", None)
    return env


def _pre_commit(repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PRE_COMMIT, "run", "--all-files", "--color", "never"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _user_repo(tmp: Path, hook_repo: tuple[Path, str], suffix: str) -> Path:
    repo = tmp / "project"
    init_user_repo(repo)
    write_skill(repo / "skills")
    (repo / ".pre-commit-config.yaml").write_text(_config(*hook_repo, suffix))
    # The package that pack --check compares against, made by the same binary.
    subprocess.run(
        [RELEASE_BINARY, "pack", "skills/demo-skill", "-o", "dist/demo-skill.skill"],
        cwd=repo,
        check=True,
        capture_output=True,
    )
    stage_all(repo)
    return repo


def _edit(repo: Path) -> None:
    guide = repo / "skills" / "demo-skill" / "references" / "guide.md"
    guide.write_text(guide.read_text() + "\nThe report covers Monday to Sunday.\n")
    stage_all(repo)


def _break(repo: Path) -> None:
    write_skill(repo / "skills", broken=True)
    stage_all(repo)


def _run(
    repo: Path, env: dict[str, str], what: str
) -> tuple[subprocess.CompletedProcess[str], str]:
    result = _pre_commit(repo, env)
    return (
        result,
        f"$ pre-commit run --all-files   # {what}\n{result.stdout}{result.stderr}",
    )


def _assert_clean_then_broken(repo: Path, env: dict[str, str]) -> str:
    clean, transcript = _run(repo, env, "clean skill, package up to date")
    assert clean.returncode == 0, transcript
    assert (
        "skillcheck lint" in clean.stdout and "skillcheck pack --check" in clean.stdout
    )
    assert clean.stdout.count("Passed") == 2, transcript

    # A clean edit: lint passes, the package is stale.
    _edit(repo)
    stale, text = _run(repo, env, "guide.md edited, package not rebuilt")
    transcript += "\n" + text
    assert stale.returncode == 1, transcript
    assert stale.stdout.count("Passed") == 1 and stale.stdout.count("Failed") == 1, (
        transcript
    )
    assert "- hook id: skillcheck-pack-check" in stale.stdout, transcript
    assert "references/guide.md" in stale.stdout, transcript

    _break(repo)
    broken, text = _run(repo, env, "broken link")
    transcript += "\n" + text
    assert broken.returncode == 1, transcript
    assert broken.stdout.count("Failed") == 2, transcript
    assert (
        "error[LNK001]: link target `references/missing.md` does not exist"
        in broken.stdout
    )
    return transcript


def test_system_hooks_pass_a_clean_skill_and_fail_a_broken_one(
    hook_repo: tuple[Path, str], tmp_path: Path
) -> None:
    repo = _user_repo(tmp_path, hook_repo, "-system")
    transcript = _assert_clean_then_broken(repo, _env(binary_on_path=True))
    print(transcript)


def test_system_hooks_say_so_when_skillcheck_is_not_installed(
    hook_repo: tuple[Path, str], tmp_path: Path
) -> None:
    repo = _user_repo(tmp_path, hook_repo, "-system")
    env = _env(binary_on_path=False)
    assert shutil.which("skillcheck", path=env["PATH"]) is None
    result = _pre_commit(repo, env)
    assert result.returncode == 1
    assert "Executable `skillcheck` not found" in result.stdout, result.stdout


def test_python_hooks_build_skillcheck_themselves(
    hook_repo: tuple[Path, str], tmp_path: Path
) -> None:
    repo = _user_repo(tmp_path, hook_repo, "")
    # No skillcheck on PATH: the hooks can only pass with the one pre-commit built.
    env = _env(binary_on_path=False)
    assert shutil.which("skillcheck", path=env["PATH"]) is None
    transcript = _assert_clean_then_broken(repo, env)
    print(transcript)
