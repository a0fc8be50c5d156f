"""Every fenced block in the skill is something an agent can copy.

Conventions (also stated in skill/fastapi-forge/references/anti-patterns.md):
- every fence names a language;
- ```python blocks parse with `ast.parse` and pass ruff with the rule set in RUFF_ARGS
  (pyflakes, pycodestyle, isort, pyupgrade, bugbear, flake8-async; Python 3.11; 100 columns;
  `forge_app`, the scaffold's package name, sorts as first-party),
  each block checked as a file of its own, so each must carry its own imports;
- a block that is wrong on purpose (an anti-pattern shown next to its fix) is fenced as
  ```python title="wrong"``: it must still parse, but ruff skips it;
- an excerpt (`<!-- snippet: PATH#REGION -->` before the fence, see snippets.py) must parse,
  but ruff skips it: it is a region of a file that is linted where it lives, without the
  imports around it;
- ```toml, ```yaml and ```json blocks parse (tomllib, PyYAML `safe_load_all`, json).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from .markdown_blocks import Block, fenced_blocks, markdown_files
from .snippets import excerpts

RUFF_ARGS = [
    "check",
    "--isolated",
    "--no-cache",
    "--select",
    "E,F,W,I,UP,B,ASYNC",
    "--target-version",
    "py311",
    "--line-length",
    "100",
    "--config",
    "lint.isort.known-first-party = ['forge_app']",
    "--output-format",
    "concise",
]

ALL_BLOCKS = [block for path in markdown_files() for block in fenced_blocks(path)]


def _of(*languages: str) -> list[Block]:
    return [b for b in ALL_BLOCKS if b.language in languages]


def test_skill_has_blocks() -> None:
    assert len(_of("python")) >= 30, "the extractor found too few python blocks"


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=Block.where)
def test_block_names_a_language(block: Block) -> None:
    assert block.language, f"{block.where()}: fence without a language"


@pytest.mark.parametrize("block", _of("python", "py"), ids=Block.where)
def test_python_parses(block: Block) -> None:
    try:
        ast.parse(block.code, filename=block.where())
    except SyntaxError as exc:
        pytest.fail(f"{block.where()}: block line {exc.lineno}: {exc.msg}")


def test_python_passes_ruff(tmp_path: Path) -> None:
    quoted = {(e.block.path, e.block.line) for p in markdown_files() for e in excerpts(p)}
    checked = [
        b
        for b in _of("python", "py")
        if not b.deliberately_wrong and (b.path, b.line) not in quoted
    ]
    names: dict[str, Block] = {}
    for n, block in enumerate(checked):
        name = f"block_{n:03d}.py"
        (tmp_path / name).write_text(block.code, encoding="utf-8")
        names[name] = block
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", *RUFF_ARGS, "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode == 0:
        return
    problems = []
    for line in proc.stdout.splitlines():
        file, _, rest = line.partition(":")
        block = names.get(Path(file).name)
        if block is None:
            problems.append(line)
            continue
        row, _, rest = rest.partition(":")
        _column, _, message = rest.partition(":")
        fence_offset = int(row) if row.isdigit() else 0
        problems.append(f"{block.path.name}:{block.line + fence_offset}: {message.strip()}")
    pytest.fail("ruff " + " ".join(RUFF_ARGS) + "\n" + "\n".join(problems) + proc.stderr)


DATA_PARSERS = {
    "toml": tomllib.loads,
    "yaml": lambda text: list(yaml.safe_load_all(text)),
    "yml": lambda text: list(yaml.safe_load_all(text)),
    "json": json.loads,
}


def test_data_blocks_parse() -> None:
    blocks = _of(*DATA_PARSERS)
    assert {b.language for b in blocks} >= {"toml", "yaml"}, "expected toml and yaml examples"
    errors = []
    for block in blocks:
        try:
            DATA_PARSERS[block.language](block.code)
        except Exception as exc:  # noqa: BLE001 - every parser error is reported the same way
            errors.append(f"{block.where()}: {block.language}: {exc}")
    assert not errors, "\n".join(errors)
