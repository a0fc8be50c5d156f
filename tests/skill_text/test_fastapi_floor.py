"""One FastAPI floor everywhere in the skill: every requirement on FastAPI, in pyproject files,
dependency lists and template headers, is `fastapi[standard]>=0.164` (native SSE keep-alive and
Depends(max_concurrency=...) need it)."""

from __future__ import annotations

import re

from .markdown_blocks import SKILL

# A requirement on fastapi: the name, optional extras, then a version operator.
REQUIREMENT = re.compile(r"""["'\s]fastapi(\[[a-z,]+\])?\s*(>=|==|~=|>)\s*([0-9][0-9.]*)""")
ALLOWED = {("[standard]", ">=", "0.164"), ("[standard]", ">=", "0.164.0")}


def requirements_on_fastapi() -> list[tuple[str, str]]:
    found = []
    for path in sorted(SKILL.rglob("*")):
        if path.suffix not in {".toml", ".txt", ".py", ".md", ".yml", ".yaml"} or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for match in REQUIREMENT.finditer(" " + line):
                found.append((f"{path.relative_to(SKILL)}:{number}", match.group(0).strip(" \"'")))
    return found


def test_every_fastapi_requirement_has_the_one_floor() -> None:
    found = requirements_on_fastapi()
    assert len(found) >= 4, "expected the Tier 1, Tier 2 and template requirements"
    wrong = [
        f"{where}: {text}"
        for where, text in found
        if (m := REQUIREMENT.search(" " + text)) is None
        or (m.group(1) or "", m.group(2), m.group(3)) not in ALLOWED
    ]
    assert not wrong, "use fastapi[standard]>=0.164:\n" + "\n".join(wrong)
