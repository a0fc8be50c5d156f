"""Every excerpt in the skill equals its source region; no project code is shown unmarked.

The rules are in snippets.py; the synthetic skills below prove each rule can fail.
"""

from __future__ import annotations

from pathlib import Path

from .markdown_blocks import markdown_files
from .snippets import SnippetError, excerpts, fix, problems, regions


def test_skill_excerpts_match_their_sources() -> None:
    found = problems()
    assert not found, "\n".join(found)


def test_the_references_quote_code() -> None:
    assert sum(len(excerpts(path)) for path in markdown_files()) >= 40


SOURCE = """\
import asyncio

# --8<-- [start:outer]
class Thing:
    # --8<-- [start:inner]
    async def go(self) -> None:
        await asyncio.sleep(0)
    # --8<-- [end:inner]
# --8<-- [end:outer]
"""


def test_region_rules() -> None:
    found = regions(SOURCE)
    # Other regions' markers vanish from an enclosing region; common indentation goes.
    assert found["outer"] == (
        "class Thing:\n    async def go(self) -> None:\n        await asyncio.sleep(0)\n"
    )
    assert found["inner"] == "async def go(self) -> None:\n    await asyncio.sleep(0)\n"
    assert "--8<--" not in found[""] and found[""].startswith("import asyncio\n\nclass Thing:")


def test_broken_markers_are_refused() -> None:
    for text, message in [
        ("# --8<-- [start:a]\nx = 1\n", "never closed"),
        ("x = 1\n# --8<-- [end:a]\n", "ends without a start"),
        ("# --8<-- [start:a]\n# --8<-- [end:a]\n# --8<-- [start:a]\n", "starts twice"),
    ]:
        try:
            regions(text, where="f.py")
        except SnippetError as exc:
            assert message in str(exc) and "f.py:" in str(exc)
        else:
            raise AssertionError(f"accepted: {text!r}")


def _skill(tmp_path: Path, markdown: str) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "thing.py").write_text(SOURCE, encoding="utf-8")
    (tmp_path / "references").mkdir()
    page = tmp_path / "references" / "page.md"
    page.write_text(markdown, encoding="utf-8")
    return page


def test_stale_excerpt_fails_and_fix_rewrites_it(tmp_path: Path) -> None:
    page = _skill(
        tmp_path,
        "# Page\n\n- item:\n\n  <!-- snippet: src/thing.py#inner -->\n  ```python\n"
        "  async def go(self) -> None:\n      pass\n  ```\n\nafter\n",
    )
    found = problems([page], root=tmp_path)
    assert (
        len(found) == 1
        and "references/page.md:6: block differs from src/thing.py#inner" in (found[0])
    )
    assert fix(page, root=tmp_path)
    assert problems([page], root=tmp_path) == []
    assert page.read_text(encoding="utf-8").endswith(
        "  ```python\n  async def go(self) -> None:\n      await asyncio.sleep(0)\n  ```\n\nafter\n"
    )


def test_missing_file_or_region_is_reported(tmp_path: Path) -> None:
    page = _skill(
        tmp_path,
        "<!-- snippet: src/thing.py#nope -->\n```python\nx = 1\n```\n\n"
        "<!-- snippet: src/gone.py -->\n```python\nx = 1\n```\n",
    )
    found = problems([page], root=tmp_path)
    assert any("has no region 'nope'" in line for line in found), found
    assert any("src/gone.py is not a file in the skill" in line for line in found), found


def test_unmarked_project_code_is_refused(tmp_path: Path) -> None:
    page = _skill(
        tmp_path,
        "```python\n# forge_app/routes/agents.py\nx = 1\n```\n\n"
        '```python title="wrong"\n# forge_app/bad.py\nx = 1\n```\n\n'
        "```python\nimport httpx\n```\n",
    )
    found = problems([page], root=tmp_path)
    assert (
        len(found) == 1 and "references/page.md:1: python block names a project file" in (found[0])
    )
