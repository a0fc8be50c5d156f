"""Excerpts: fenced blocks in the skill's Markdown that quote a region of a file in the skill.

The syntax (skillcheck 0.2's snippet rule implements the same; this module checks it until
then, and can stay as a cross-check):

- in Markdown, an HTML comment on the line directly before a fenced block:
  `<!-- snippet: PATH#REGION -->`, PATH relative to the skill root, `#REGION` optional
  (without it the block is the whole file);
- in the source file, the region sits between marker lines containing
  `--8<-- [start:REGION]` and `--8<-- [end:REGION]` (after the file's comment leader:
  `# --8<-- [start:stream]`);
- marker lines are never part of a region (nor other regions' markers inside it); the
  region's common indentation is removed; the block must equal that text.

Also refused: a python block that names a project file on its first line (`# forge_app/...`)
without being an excerpt; such code drifts from the tested trees the moment it is written.

Run `python tests/skill_text/snippets.py` to list problems, `--fix` to rewrite every stale
excerpt from its source (missing files or regions still need a person).
"""

from __future__ import annotations

import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from markdown_blocks import SKILL, Block, fenced_blocks, markdown_files  # type: ignore
else:
    from .markdown_blocks import SKILL, Block, fenced_blocks, markdown_files

SNIPPET = re.compile(r"^\s*<!--\s*snippet:\s*(?P<path>[^#\s]+)(?:#(?P<region>[\w.-]+))?\s*-->\s*$")
MARKER = re.compile(r"--8<--\s*\[(?P<kind>start|end):(?P<region>[\w.-]+)\]")
# `# forge_app/routes/agents.py`, `# tests/conftest.py`, `# src/x/y.py (excerpt)`: a block
# that says which project file it is.
NAMES_A_FILE = re.compile(r"^#\s*[\w./-]*[\w-]+\.py\b")


class SnippetError(Exception):
    pass


@dataclass(frozen=True)
class Excerpt:
    block: Block
    marker_line: int  # 1-based line of the `<!-- snippet: -->` comment
    path: str
    region: str | None

    @property
    def target(self) -> str:
        return f"{self.path}#{self.region}" if self.region else self.path


def regions(text: str, *, where: str = "") -> dict[str, str]:
    """Every region of a source file by name; '' is the whole file. Markers are checked."""
    lines = text.splitlines()
    opened: dict[str, int] = {}
    spans: dict[str, tuple[int, int]] = {}
    for n, line in enumerate(lines):
        m = MARKER.search(line)
        if m is None:
            continue
        name = m["region"]
        if m["kind"] == "start":
            if name in opened or name in spans:
                raise SnippetError(f"{where}:{n + 1}: region {name!r} starts twice")
            opened[name] = n
        else:
            if name not in opened:
                raise SnippetError(f"{where}:{n + 1}: region {name!r} ends without a start")
            spans[name] = (opened.pop(name), n)
    if opened:
        name, n = next(iter(opened.items()))
        raise SnippetError(f"{where}:{n + 1}: region {name!r} is never closed")

    def body(start: int, end: int) -> str:
        kept = [line for line in lines[start:end] if MARKER.search(line) is None]
        return textwrap.dedent("\n".join(kept) + "\n")

    found = {name: body(start + 1, end) for name, (start, end) in spans.items()}
    found[""] = body(0, len(lines))
    return found


def excerpts(path: Path) -> list[Excerpt]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    for block in fenced_blocks(path):
        if block.line < 2:
            continue
        m = SNIPPET.match(lines[block.line - 2])
        if m:
            found.append(Excerpt(block, block.line - 1, m["path"], m["region"]))
    return found


def expected(excerpt: Excerpt, root: Path = SKILL) -> str:
    where = f"{excerpt.block.path.relative_to(root)}:{excerpt.marker_line}"
    source = (root / excerpt.path).resolve()
    if not source.is_relative_to(root.resolve()) or not source.is_file():
        raise SnippetError(f"{where}: {excerpt.path} is not a file in the skill")
    found = regions(source.read_text(encoding="utf-8"), where=excerpt.path)
    if (excerpt.region or "") not in found:
        raise SnippetError(
            f"{where}: {excerpt.path} has no region {excerpt.region!r}: add "
            f"`--8<-- [start:{excerpt.region}]` / `[end:{excerpt.region}]` marker lines to it"
        )
    return found[excerpt.region or ""]


def unmarked_project_code(path: Path) -> list[Block]:
    marked = {e.block.line for e in excerpts(path)}
    return [
        b
        for b in fenced_blocks(path)
        if b.language in ("python", "py")
        and not b.deliberately_wrong
        and b.line not in marked
        and NAMES_A_FILE.match(b.code.lstrip())
    ]


def problems(paths: list[Path] | None = None, root: Path = SKILL) -> list[str]:
    found = []
    for path in markdown_files() if paths is None else paths:
        rel = path.relative_to(root)
        for excerpt in excerpts(path):
            try:
                want = expected(excerpt, root)
            except SnippetError as exc:
                found.append(str(exc))
                continue
            if excerpt.block.code != want:
                found.append(
                    f"{rel}:{excerpt.block.line}: block differs from {excerpt.target}; "
                    "run `python tests/skill_text/snippets.py --fix` to copy the source"
                )
        for block in unmarked_project_code(path):
            first = block.code.lstrip().splitlines()[0]
            found.append(
                f"{rel}:{block.line}: python block names a project file ({first!r}) but is no "
                "excerpt: put `<!-- snippet: PATH#REGION -->` before it, or fence it as "
                '```python title="wrong"'
            )
    return found


def fix(path: Path, root: Path = SKILL) -> bool:
    """Rewrite the stale excerpts of one Markdown file; True when it changed."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    changed = False
    # Bottom up, so earlier line numbers stay valid.
    for excerpt in sorted(excerpts(path), key=lambda e: e.block.line, reverse=True):
        try:
            want = expected(excerpt, root)
        except SnippetError:
            continue
        if excerpt.block.code == want:
            continue
        opening = lines[excerpt.block.line - 1]
        indent = opening[: len(opening) - len(opening.lstrip(" "))]
        fence = re.match(r"[`~]{3,}", opening.lstrip(" "))
        assert fence is not None
        first = last = excerpt.block.line  # index of the first body line
        while last < len(lines) and not (
            lines[last].strip().startswith(fence[0]) and set(lines[last].strip()) == {fence[0][0]}
        ):
            last += 1
        body = [(indent + line if line else line) + "\n" for line in want.splitlines()]
        lines[first:last] = body
        changed = True
    if changed:
        path.write_text("".join(lines), encoding="utf-8")
    return changed


def main(argv: list[str]) -> int:
    if "--fix" in argv:
        for path in markdown_files():
            if fix(path):
                print(f"rewrote excerpts in {path.relative_to(SKILL)}")
    found = problems()
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
