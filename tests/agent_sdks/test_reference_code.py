"""The SDK runner code in references/agent-orchestration.md is the code these tests run.

Each `###` subsection of `## Agent SDK runners` links its overlay's `sdk.py` and shows an
excerpt of it: every line of its python block must appear in that file, in order.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from forge_testing import REPO_ROOT
from sdk_venvs import SDKS

OVERLAY_LINK = r"\]\((\.\./assets/scaffold/layers/agent-[a-z]+/[^)]+/sdk\.py)\)"
REFERENCE = REPO_ROOT / "skill" / "fastapi-forge" / "references" / "agent-orchestration.md"
SECTION = "## Agent SDK runners"


def subsections() -> dict[Path, list[str]]:
    """Overlay file -> the python block shown for it."""
    text = REFERENCE.read_text(encoding="utf-8")
    assert SECTION in text, f"{REFERENCE}: no '{SECTION}' section"
    section = re.split(r"^## ", text.split(SECTION, 1)[1], flags=re.M)[0]
    shown: dict[Path, list[str]] = {}
    for part in re.split(r"^### ", section, flags=re.M)[1:]:
        link = re.search(OVERLAY_LINK, part)
        block = re.search(r"^```python\n(.*?)^```", part, flags=re.M | re.S)
        assert link and block, f"{REFERENCE}: subsection {part.splitlines()[0]!r} needs both"
        shown[(REFERENCE.parent / link.group(1)).resolve()] = block.group(1).splitlines()
    return shown


def test_every_sdk_has_a_subsection() -> None:
    overlays = {path.parts[-5] for path in subsections()}
    assert overlays == {f"agent-{sdk}" for sdk in SDKS}


@pytest.mark.parametrize("path", sorted(subsections()), ids=lambda p: p.parts[-5])
def test_block_is_an_excerpt_of_the_overlay(path: Path) -> None:
    lines = iter(path.read_text(encoding="utf-8").splitlines())
    for number, line in enumerate(subsections()[path], start=1):
        if line.strip() and line not in lines:
            pytest.fail(f"{REFERENCE.name}: block line {number} is not next in {path}: {line!r}")
