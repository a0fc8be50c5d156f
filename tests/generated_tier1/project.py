"""Generated Tier 1 projects for the end-to-end tests: the option combinations, the scaffold
CLI, one virtualenv per project, and commands run inside it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from forge_testing import REPO_ROOT, clean_env, run
from forge_testing.venvs import BASE_PYTHON, UV

SCAFFOLD = REPO_ROOT / "skill" / "fastapi-forge" / "scripts" / "scaffold_fastapi.py"
FLAGS = ("db", "auth", "agent", "deploy", "queue")


@dataclass(frozen=True)
class Combo:
    """One set of scaffold options. Together, COMBOS use every value of every option."""

    name: str
    db: str
    auth: str
    agent: str
    deploy: str
    queue: str

    @property
    def package(self) -> str:
        return self.name.replace("-", "_")

    def flags(self) -> list[str]:
        args = ["--tier", "1", "--name", self.name]
        for flag in FLAGS:
            args += [f"--{flag}", getattr(self, flag)]
        return args

    def __str__(self) -> str:
        return self.name


COMBOS: tuple[Combo, ...] = (
    # The spec's defaults; also the project that runs live with 2 workers and its ARQ worker.
    Combo(
        "forge-default",
        db="postgres",
        auth="jwt",
        agent="anthropic",
        deploy="compose",
        queue="arq",
    ),
    Combo(
        "forge-mongo",
        db="mongodb",
        auth="oauth2",
        agent="openai-agents",
        deploy="k8s",
        queue="celery",
    ),
    Combo(
        "forge-redis",
        db="redis",
        auth="apikey",
        agent="langgraph",
        deploy="cloudrun",
        queue="none",
    ),
    Combo(
        "forge-nodb",
        db="none",
        auth="none",
        agent="crewai",
        deploy="serverless",
        queue="arq",
    ),
    Combo(
        "forge-custom",
        db="postgres",
        auth="apikey",
        agent="custom",
        deploy="k8s",
        queue="celery",
    ),
    Combo(
        "forge-noagent",
        db="redis",
        auth="oauth2",
        agent="none",
        deploy="serverless",
        queue="none",
    ),
    # Compose without a database or a worker: the deployment files follow the options.
    Combo(
        "forge-claude",
        db="none",
        auth="jwt",
        agent="claude-agent-sdk",
        deploy="compose",
        queue="none",
    ),
)
DEFAULT = COMBOS[0]


def by_deploy(deploy: str) -> Combo:
    return next(combo for combo in COMBOS if combo.deploy == deploy)


def scaffold(combo: Combo, parent: Path) -> Path:
    out = parent / combo.name
    run(
        [sys.executable, SCAFFOLD, *combo.flags(), "--out", out],
        cwd=parent,
        env=clean_env(),
    )
    return out


@dataclass
class Project:
    combo: Combo
    root: Path
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def venv(self) -> Path:
        return self.root / ".venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name

    def env(self, **extra: str) -> dict[str, str]:
        env = clean_env(**extra)
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.venv)
        return env

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
        """A virtualenv of its own with the project and its dev extras (editable), made with
        uv, as the generated README does: pip took minutes per project, uv takes seconds."""
        started = time.monotonic()
        run(
            [UV, "venv", "--python", BASE_PYTHON, self.venv],
            cwd=self.root,
            env=clean_env(),
        )
        self.run(
            [
                UV,
                "pip",
                "install",
                "--python",
                self.python,
                # The tests run under PYTHONDONTWRITEBYTECODE: without compiled modules every
                # uvicorn worker recompiles its imports at start and, on a busy machine, misses
                # its health deadline (the multi-worker metrics test timed out that way).
                "--compile-bytecode",
                "--editable",
                ".",
                "--group",
                "dev",
            ],
            timeout=1500,
        )
        self.timings["install"] = time.monotonic() - started
