"""Shared dependencies go on the `APIRouter`, never into `include_router` (SKILL.md and the
official FastAPI skill): the concurrency cap on agent runs included. Checked in every file of
the skill (code, templates, layers, the Markdown that quotes them)."""

from __future__ import annotations

import re

from forge_testing import REPO_ROOT

SKILL = REPO_ROOT / "skill" / "fastapi-forge"
# `include_router(` up to its closing parenthesis (one level of nested calls allowed),
# with a `dependencies=` keyword inside.
INCLUDE_WITH_DEPENDENCIES = re.compile(
    r"include_router\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*?\bdependencies\s*=",
    re.DOTALL,
)


def test_no_include_router_takes_dependencies() -> None:
    offenders = []
    for path in sorted(SKILL.rglob("*")):
        if path.suffix not in {".py", ".md"} or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        for match in INCLUDE_WITH_DEPENDENCIES.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            offenders.append(f"{path.relative_to(REPO_ROOT)}:{line}")
    assert not offenders, (
        "declare shared dependencies on the APIRouter (APIRouter(dependencies=[...])), "
        f"not in include_router: {offenders}"
    )


def test_the_pattern_finds_what_it_must() -> None:
    assert INCLUDE_WITH_DEPENDENCIES.search(
        "app.include_router(run_router, dependencies=[run_slot])"
    )
    assert INCLUDE_WITH_DEPENDENCIES.search(
        "app.include_router(\n    make(x), prefix='/a',\n    dependencies=[Depends(f)],\n)"
    )
    assert not INCLUDE_WITH_DEPENDENCIES.search(
        "app.include_router(capped)\nrouter = APIRouter(dependencies=[slot])"
    )
