"""The release binary, the crate's version, and small skills to lint, shared by the
distribution tests (wheel, pre-commit hooks, GitHub Action)."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

from forge_testing import REPO_ROOT

CRATE_MANIFEST = REPO_ROOT / "crates" / "skillcheck" / "Cargo.toml"
CRATE_VERSION: str = tomllib.loads(CRATE_MANIFEST.read_text())["package"]["version"]
# scripts/test builds it before the Python tests; a tree changed since is rebuilt here, so a
# test never runs a stale binary (cargo only checks freshness when nothing changed).
RELEASE_BINARY = REPO_ROOT / "target" / "release" / "skillcheck"


def build_release_binary() -> Path:
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "-p", "skillcheck"],
        cwd=REPO_ROOT,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return RELEASE_BINARY


GUIDE = "# Guide\n\nRun `report.py` with the input file.\n"


def write_skill(root: Path, name: str = "demo-skill", *, broken: bool = False) -> Path:
    """A skill that lints clean (no error, no warning), or with one broken link (LNK001)."""
    skill = root / name
    (skill / "references").mkdir(parents=True, exist_ok=True)
    target = "references/missing.md" if broken else "references/guide.md"
    (skill / "SKILL.md").write_text(
        f"---\nname: {name}\n"
        "description: Builds the weekly report. Use when the user asks for the weekly report.\n"
        "---\n\n# Weekly report\n\n"
        f"Read [the guide]({target}) first.\n"
    )
    (skill / "references" / "guide.md").write_text(GUIDE)
    if broken:
        # Still reachable, so the only finding is the broken link.
        (skill / "SKILL.md").write_text(
            (skill / "SKILL.md").read_text()
            + "\nDetails: [guide](references/guide.md).\n"
        )
    return skill
