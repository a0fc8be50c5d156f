"""scripts/skill-budget: each task's reading list within its token budget (chars / 4)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .markdown_blocks import REPO

SCRIPT = REPO / "scripts" / "skill-budget"

LISTS = """\
# Skill

## Reading lists

| task | read |
|---|---|
| New agent API | [agents](references/agents.md), [core](references/core.md#settings) |
| Add agent endpoints to an existing app | [existing](references/existing.md) |
| Split into services | [agents](references/agents.md) |

## Next
"""


def _run(root: Path | None = None) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, str(SCRIPT)] + ([str(root)] if root else [])
    return subprocess.run(args, capture_output=True, text=True, check=False)


def _skill(tmp_path: Path, agents_chars: int, skill_md: str = LISTS) -> Path:
    (tmp_path / "references").mkdir()
    (tmp_path / "SKILL.md").write_text(skill_md, encoding="utf-8")
    (tmp_path / "references" / "agents.md").write_text("a" * agents_chars, encoding="utf-8")
    (tmp_path / "references" / "core.md").write_text("c\n" * 2000, encoding="utf-8")
    (tmp_path / "references" / "existing.md").write_text("e" * 4000, encoding="utf-8")
    return tmp_path


def test_the_skill_is_within_budget() -> None:
    proc = _run()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "New agent API:" in proc.stdout
    assert "Add agent endpoints to an existing app:" in proc.stdout


def test_within_budget_passes_and_prints_costs(tmp_path: Path) -> None:
    proc = _run(_skill(tmp_path, agents_chars=40_000))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # SKILL.md + agents (10,000) + core (1,000, its fragment ignored): every file counted whole.
    assert "New agent API: 3 files, 2,0" in proc.stdout
    assert "budget 15,000: ok" in proc.stdout
    assert "Split into services: 2 files" in proc.stdout  # no budget: cost only


def test_over_budget_fails(tmp_path: Path) -> None:
    proc = _run(_skill(tmp_path, agents_chars=60_000))
    assert proc.returncode == 1
    assert "budget 15,000: OVER" in proc.stdout
    assert "over by " in proc.stdout


def test_missing_budgeted_list_fails(tmp_path: Path) -> None:
    without = LISTS.replace("| Add agent endpoints to an existing app |", "| Something else |")
    proc = _run(_skill(tmp_path, agents_chars=100, skill_md=without))
    assert proc.returncode == 1
    assert "no reading list for 'add agent endpoints to an existing app'" in proc.stdout


def test_dead_link_fails(tmp_path: Path) -> None:
    broken = LISTS.replace("references/existing.md", "references/gone.md")
    proc = _run(_skill(tmp_path, agents_chars=100, skill_md=broken))
    assert proc.returncode == 1
    assert "references/gone.md, which does not exist" in proc.stdout


def test_files_a_listed_reference_links_are_counted(tmp_path: Path) -> None:
    # existing.md says "copy it from the template": the agent opens the template, and
    # whatever the template's own Markdown links send it to.
    root = _skill(tmp_path, agents_chars=100)
    (root / "assets").mkdir()
    (root / "assets" / "routes.py").write_text("r" * 40_000, encoding="utf-8")
    (root / "references" / "existing.md").write_text(
        "Copy the pieces from [routes](../assets/routes.py#L3) and [core](core.md#settings).\n"
        "```python\n[not a link](nowhere.md)\n```\n",
        encoding="utf-8",
    )
    proc = _run(root)
    assert proc.returncode == 1
    assert "assets/routes.py (from references/existing.md:1)" in proc.stdout
    assert "references/core.md (from references/existing.md:1)" in proc.stdout
    assert "Add agent endpoints to an existing app: 4 files" in proc.stdout
    assert "budget 8,000: OVER" in proc.stdout


def test_links_titled_optional_are_not_followed(tmp_path: Path) -> None:
    root = _skill(tmp_path, agents_chars=100)
    (root / "assets").mkdir()
    (root / "assets" / "routes.py").write_text("r" * 40_000, encoding="utf-8")
    (root / "references" / "existing.md").write_text(
        'All of them: [routes](../assets/routes.py "optional"); `[code](x.md)` is code.\n',
        encoding="utf-8",
    )
    proc = _run(root)
    assert proc.returncode == 0, proc.stdout
    assert "Add agent endpoints to an existing app: 2 files" in proc.stdout
    assert "routes.py" not in proc.stdout


def test_a_followed_folder_link_fails_a_budgeted_list(tmp_path: Path) -> None:
    root = _skill(tmp_path, agents_chars=100)
    (root / "assets" / "layer").mkdir(parents=True)
    (root / "references" / "existing.md").write_text(
        "The code is in [the layer](../assets/layer/).\n", encoding="utf-8"
    )
    proc = _run(root)
    assert proc.returncode == 1
    assert "existing.md:1: assets/layer is a folder; link its files, or mark" in proc.stdout
