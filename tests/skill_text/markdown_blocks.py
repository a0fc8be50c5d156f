"""Read the skill's Markdown the way the tests need it: fenced blocks, headings, links.

Kept small and dependency-free on purpose; the slug rules follow
/work/shared/design/github-slugs.md (the contract skillcheck enforces), so a link this
module accepts is one GitHub resolves too.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SKILL = REPO / "skill" / "fastapi-forge"

_FENCE_OPEN = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    info: str
    code: str

    @property
    def language(self) -> str:
        return self.info.split()[0].lower() if self.info.split() else ""

    @property
    def deliberately_wrong(self) -> bool:
        # Convention for anti-pattern examples: ```python title="wrong"
        return 'title="wrong"' in self.info

    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def markdown_files() -> list[Path]:
    return sorted(SKILL.rglob("*.md"))


def fenced_blocks(path: Path) -> list[Block]:
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE_OPEN.match(lines[i])
        if m is None or (m["fence"][0] == "`" and "`" in m["info"]):
            i += 1
            continue
        fence, indent, start = m["fence"], len(m["indent"]), i
        body: list[str] = []
        i += 1
        while i < len(lines):
            stripped = lines[i].lstrip(" ")
            closing = stripped.rstrip()
            if (
                len(lines[i]) - len(stripped) <= 3
                and closing.startswith(fence[0] * len(fence))
                and set(closing) == {fence[0]}
            ):
                break
            line = lines[i]
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))) :])
            i += 1
        blocks.append(Block(path, start + 1, m["info"].strip(), "\n".join(body) + "\n"))
        i += 1
    return blocks


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """Lines outside fenced blocks, with their 1-based numbers."""
    inside: set[int] = set()
    for block in fenced_blocks(path):
        inside.update(range(block.line, block.line + block.code.count("\n") + 2))
    text = path.read_text(encoding="utf-8").splitlines()
    return [(n, line) for n, line in enumerate(text, 1) if n not in inside]


def _rendered_heading_text(raw: str) -> str:
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", raw)  # links and images keep their text
    text = re.sub(r"<[^>]+>", "", text)  # HTML tags vanish
    text = text.replace("`", "")
    # Only `*` emphasis: `_` inside words (create_app) is not emphasis and stays in the id.
    text = re.sub(r"(\*\*|\*)(.+?)\1", r"\2", text)
    return text.strip()


def slug(heading: str) -> str:
    kept = []
    for ch in _rendered_heading_text(heading).lower():
        cat = unicodedata.category(ch)
        if ch in "- " or ch.isalpha() or cat.startswith("M") or cat in ("Nd", "Pc"):
            kept.append(ch)
    return "".join(kept).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    used: dict[str, int] = {}
    ids: set[str] = set()
    for _, line in prose_lines(path):
        m = _ATX.match(line)
        if m is None:
            continue
        base = slug(m[2])
        candidate = base
        while candidate in ids:
            used[base] = used.get(base, 0) + 1
            candidate = f"{base}-{used[base]}"
        ids.add(candidate)
    return ids


def links(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for n, line in prose_lines(path):
        line = re.sub(r"`[^`]*`", "", line)  # code spans are not links
        found.extend((n, m["target"]) for m in _LINK.finditer(line))
    return found
