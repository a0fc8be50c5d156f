"""agent-orchestration.md points at the SDK runner files instead of copying them.

Its `## Agent SDK runners` section links every agent layer's `agents/sdk.py` (an agent reads
the one file it needs; tests/agent_runners runs them); runner code copied into the reference
would drift, so none is allowed there.
"""

from __future__ import annotations

import re

from .markdown_blocks import SKILL

REFERENCE = SKILL / "references" / "agent-orchestration.md"
SECTION = "## Agent SDK runners"
LINK = r"\]\((\.\./assets/scaffold/layers/agent-[a-z-]+/src/forge_app/agents/sdk\.py)(?: \"[^\"]*\")?\)"
RUNNERS = sorted((SKILL / "assets" / "scaffold" / "layers").glob("agent-*/src/*/agents/sdk.py"))


def section() -> str:
    text = REFERENCE.read_text(encoding="utf-8")
    assert SECTION in text, f"{REFERENCE}: no '{SECTION}' section"
    return re.split(r"^## ", text.split(SECTION, 1)[1], flags=re.MULTILINE)[0]


def test_every_runner_file_is_linked() -> None:
    assert len(RUNNERS) >= 5
    linked = {(REFERENCE.parent / m).resolve() for m in re.findall(LINK, section())}
    missing = [str(p.relative_to(SKILL)) for p in RUNNERS if p.resolve() not in linked]
    assert not missing, f"{REFERENCE.name}: link these runner files in '{SECTION}': {missing}"


def test_no_runner_code_is_copied_into_the_reference() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    assert "```python" not in section()
    for path in RUNNERS:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith(("class ", "def ", "async def ")):
                assert line not in text, f"{REFERENCE.name} copies {path.name}: {line}"
