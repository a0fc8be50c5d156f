"""Commands run to completion, in an environment that does not leak the test venv."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from .paths import PIP_CACHE_DIR, UV_CACHE_DIR


class CommandFailed(AssertionError):
    """A command exited non-zero or timed out; the message carries its whole output."""


def run(
    argv: Sequence[str | Path],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 900,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Runs a command to completion (stderr folded into stdout); with `check`, a failure
    raises CommandFailed with the command's whole output."""
    started = time.monotonic()
    try:
        result = subprocess.run(
            [str(arg) for arg in argv],
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        output = (
            error.output.decode(errors="replace")
            if isinstance(error.output, bytes)
            else ""
        )
        raise CommandFailed(
            f"timed out after {timeout:.0f}s in {cwd}: {argv}\n{output}"
        ) from None
    if check and result.returncode != 0:
        raise CommandFailed(
            f"exit {result.returncode} after {time.monotonic() - started:.1f}s in {cwd}:\n"
            f"$ {' '.join(str(arg) for arg in argv)}\n{result.stdout}"
        )
    return result


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without anything that would steer a child
    interpreter towards the repository's own virtualenv or test configuration, with the
    shared download caches and no interpreter downloads by uv."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTEST_ADDOPTS"}
        and not key.startswith("PYTEST_")
    }
    env["PIP_CACHE_DIR"] = str(PIP_CACHE_DIR)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["UV_CACHE_DIR"] = str(UV_CACHE_DIR)
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env["UV_NO_PROGRESS"] = "1"
    env.update(extra)
    return env
