"""A generated Tier 1 project installed in a virtualenv of its own, and commands run in it."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from forge_testing import run
from forge_testing.scaffolding import Combo
from forge_testing.venvs import Venv, create_venv


@dataclass
class InstalledProject:
    combo: Combo
    root: Path
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def venv(self) -> Venv:
        return Venv(self.root / ".venv")

    @property
    def python(self) -> Path:
        return self.venv.python

    def bin(self, name: str) -> Path:
        return self.venv.bin(name)

    def env(self, **extra: str) -> dict[str, str]:
        return self.venv.env(**extra)

    def run(
        self,
        argv: Sequence[str | Path],
        *,
        timeout: float = 900,
        check: bool = True,
        **env: str,
    ) -> subprocess.CompletedProcess[str]:
        return run(
            argv, cwd=self.root, env=self.env(**env), timeout=timeout, check=check
        )

    def install(self) -> None:
        """The project and its dev group, editable, as the generated README does (with uv:
        pip took minutes per project, uv takes seconds)."""
        started = time.monotonic()
        create_venv(self.venv.root, "--editable", ".", "--group", "dev", cwd=self.root)
        self.timings["install"] = time.monotonic() - started
