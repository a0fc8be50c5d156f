"""Every generated Alembic history is one chain: revision ids unique, one head, every
`down_revision` present. Layers add migrations independently (db-sql for Tier 1 and Tier 2's
agent-service, tier2-base and tier3 per service), so two layers can pick the same next id;
Alembic then refuses `upgrade head` ("Multiple head revisions"), which CI once hit only
minutes into the README test of Tier 2."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from forge_testing.scaffolding import scaffold

PROJECTS = {
    "tier1": {"tier": 1},
    "tier2": {"tier": 2},
    "tier3": {"tier": 3},
}


def header(path: Path) -> tuple[str, tuple[str, ...]]:
    """The file's `revision` and its `down_revision`s, read without importing it."""
    values: dict[str, object] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            for target in targets:
                if isinstance(target, ast.Name) and node.value is not None:
                    values[target.id] = ast.literal_eval(node.value)
    down = values.get("down_revision")
    downs = () if down is None else (down,) if isinstance(down, str) else tuple(down)
    return str(values["revision"]), downs


@pytest.mark.parametrize("project", list(PROJECTS))
def test_each_migration_history_is_one_chain(project: str, tmp_path: Path) -> None:
    root = scaffold(tmp_path / "mig", **PROJECTS[project])
    histories = sorted({p.parent for p in root.rglob("versions/*.py")})
    assert histories, f"{project}: no Alembic versions folder generated"
    for versions in histories:
        where = versions.relative_to(root)
        revisions: dict[str, Path] = {}
        parents: set[str] = set()
        for path in sorted(versions.glob("*.py")):
            revision, downs = header(path)
            assert revision not in revisions, (
                f"{where}: revision {revision!r} in both {revisions[revision].name} and "
                f"{path.name}; give the later one the next id and revise its predecessor"
            )
            revisions[revision] = path
            parents.update(downs)
        missing = parents - set(revisions)
        assert not missing, f"{where}: down_revision {sorted(missing)} does not exist"
        heads = sorted(set(revisions) - parents)
        assert len(heads) == 1, (
            f"{where}: {len(heads)} heads {heads}; expected one chain"
        )
