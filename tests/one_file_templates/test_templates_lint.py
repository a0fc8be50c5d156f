"""The agent templates are copied as they are: they must be ruff-clean and formatted
for Python 3.11 with the rule sets the skill asks of generated code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from forge_testing import TEMPLATES

FILES = [TEMPLATES / "single_api.py", TEMPLATES / "agent_routes.py"]
RULES = "E,F,W,I,UP,B,ASYNC"


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--isolated", "--target-version=py311"],
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_ruff_check(path: Path) -> None:
    result = ruff("check", "--select", RULES, str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_ruff_format(path: Path) -> None:
    result = ruff("format", "--check", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
