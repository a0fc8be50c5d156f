"""Generated projects: the scaffold script run the one way every suite runs it, with the
options of its manifest (skill/fastapi-forge/assets/scaffold/manifest.json), and the Tier 1
option combinations the end-to-end suites use."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .commands import clean_env, run
from .paths import SKILL
from .venvs import BASE_PYTHON

SCAFFOLD_SCRIPT = SKILL / "scripts" / "scaffold_fastapi.py"
MANIFEST: dict[str, Any] = json.loads(
    (SKILL / "assets" / "scaffold" / "manifest.json").read_text()
)


def option_values(option: str, tier: int | str) -> list[str]:
    """The manifest's values of `--option` that apply to `tier`."""
    spec = MANIFEST["options"][option]
    return [
        value
        for value, value_spec in spec["values"].items()
        if str(tier) in value_spec.get("tiers", spec["tiers"])
    ]


def run_scaffold(
    *args: str | Path, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The script with `args` as given, its stdout and stderr apart and its exit status
    unchecked: for the tests of the script itself (usage errors, refusals, notes).

    It runs under the interpreter the test venv was made from, without the venv's
    packages, as users run it: the script must need the standard library only."""
    return subprocess.run(
        [str(BASE_PYTHON), str(SCAFFOLD_SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
        env=clean_env(),
    )


def scaffold(
    out: Path,
    *,
    tier: int = 1,
    name: str | None = None,
    script: Path = SCAFFOLD_SCRIPT,
    **options: str,
) -> Path:
    """Generates a project into `out` (its parent must exist) and returns `out`; `script`
    is another copy of the scaffold, such as one unzipped from a package.

    `options` are the manifest's (`db="redis"`, `broker="rabbitmq"`, ...); an option or a
    value the manifest does not have for `tier` is refused here, naming what it has."""
    args: list[str | Path] = ["--tier", str(tier)]
    if name is not None:
        args += ["--name", name]
    for option, value in options.items():
        if option not in MANIFEST["options"]:
            raise ValueError(
                f"scaffold: no option --{option} in manifest.json "
                f"(it has {', '.join(MANIFEST['options'])})"
            )
        allowed = option_values(option, tier)
        if value not in allowed:
            raise ValueError(
                f"scaffold: --{option} {value} is not a Tier {tier} value in "
                f"manifest.json (it has {', '.join(allowed) or 'none for this tier'})"
            )
        args += [f"--{option}", value]
    run(
        [BASE_PYTHON, script, *args, "--out", out],
        cwd=out.parent,
        env=clean_env(),
    )
    return out


@dataclass(frozen=True)
class Combo:
    """One set of Tier 1 options. Together, COMBOS use every value of every option."""

    name: str
    db: str
    auth: str
    agent: str
    deploy: str
    queue: str

    @property
    def package(self) -> str:
        return self.name.replace("-", "_")

    def options(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "name"}

    def flags(self) -> list[str]:
        """The command-line options, --tier and --name first."""
        args = ["--tier", "1", "--name", self.name]
        for option, value in self.options().items():
            args += [f"--{option}", value]
        return args

    def scaffold(self, parent: Path) -> Path:
        """The project generated into `parent`/NAME."""
        return scaffold(parent / self.name, tier=1, name=self.name, **self.options())

    def __str__(self) -> str:
        return self.name


# The option names of Combo, in the order of its fields.
FLAGS = tuple(f.name for f in fields(Combo) if f.name != "name")

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
