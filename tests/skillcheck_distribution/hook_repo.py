"""A git repository that pre-commit can clone at one `rev` and that holds this working tree
as it is now, committed or not, so the hooks under test are the ones on disk.

The snapshot is a commit made with a throwaway index (the user's index, branch and
working tree are not touched) in a bare repository that borrows this repository's objects
(`objects/info/alternates`): nothing is copied."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from forge_testing import REPO_ROOT

# What pre-commit needs from the hook repository: the hook list and what `pip install .`
# builds (pyproject.toml, the workspace and the crate).
SNAPSHOT_PATHS = (
    ".pre-commit-hooks.yaml",
    "pyproject.toml",
    "Cargo.toml",
    "Cargo.lock",
    "crates/skillcheck",
)
COMMITTER = {
    "GIT_AUTHOR_NAME": "skillcheck tests",
    "GIT_AUTHOR_EMAIL": "tests@skillcheck.invalid",
    "GIT_COMMITTER_NAME": "skillcheck tests",
    "GIT_COMMITTER_EMAIL": "tests@skillcheck.invalid",
}


def _git(*args: str, cwd: Path = REPO_ROOT, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **COMMITTER, **(env or {})},
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def snapshot_hook_repo(dest: Path) -> tuple[Path, str]:
    """(repository path, commit) holding the working tree's hook files."""
    index = dest.parent / f"{dest.name}.index"
    env = {"GIT_INDEX_FILE": str(index)}
    _git("read-tree", "HEAD", env=env)
    _git("add", "--all", "--", *SNAPSHOT_PATHS, env=env)
    tree = _git("write-tree", env=env)
    commit = _git("commit-tree", tree, "-p", "HEAD", "-m", "hooks under test", env=env)
    index.unlink()

    objects = (
        Path(_git("rev-parse", "--path-format=absolute", "--git-common-dir"))
        / "objects"
    )
    _git("init", "--quiet", "--bare", str(dest))
    (dest / "objects" / "info" / "alternates").write_text(f"{objects}\n")
    _git("update-ref", "refs/heads/main", commit, cwd=dest)
    return dest, commit


def init_user_repo(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    _git("init", "--quiet", "-b", "main", cwd=path)


def stage_all(path: Path) -> None:
    _git("add", "--all", cwd=path)
