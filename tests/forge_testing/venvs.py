"""Virtualenvs, all made and filled by uv with the one download cache (.cache/uv, through
`clean_env`), byte-code compiled at install time.

Why compiled: the tests run with PYTHONDONTWRITEBYTECODE, so without .pyc files every
process start compiles every import again (over 3,000 modules for `anthropic`, about 10 s
each time; uvicorn workers missed their health deadline that way on a busy machine)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .commands import clean_env, run
from .paths import CACHE

# uv comes from the repository's test venv (tests/requirements.txt); the venvs it makes use
# the interpreter that venv was made from, never one uv would download.
UV = Path(sys.executable).parent / "uv"
BASE_PYTHON = Path(sys.base_prefix) / "bin" / "python3"
# Installs wait on downloads; a cold cache and a loaded machine make them slow.
INSTALL_TIMEOUT = 1500


@dataclass(frozen=True)
class Venv:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def bin(self, name: str) -> Path:
        return self.root / "bin" / name

    def env(self, **extra: str) -> dict[str, str]:
        """`clean_env(**extra)` with this venv activated (first on PATH)."""
        env = clean_env(**extra)
        env["PATH"] = f"{self.root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.root)
        return env

    def install(self, *args: str | Path, cwd: Path) -> None:
        """`uv pip install ARGS` into this venv (pip-style arguments, relative to `cwd`)."""
        run(
            [
                UV,
                "pip",
                "install",
                "--compile-bytecode",
                "--python",
                self.python,
                *args,
            ],
            cwd=cwd,
            env=clean_env(),
            timeout=INSTALL_TIMEOUT,
        )


def create_venv(root: Path, *install_args: str | Path, cwd: Path) -> Venv:
    """A new venv at `root` with `install_args` installed (nothing when there are none)."""
    run(
        [UV, "venv", "--clear", "--python", BASE_PYTHON, root],
        cwd=cwd,
        env=clean_env(),
    )
    venv = Venv(root)
    if install_args:
        venv.install(*install_args, cwd=cwd)
    return venv


def _requirement_files(path: Path) -> list[Path]:
    """`path` and every file it includes with `-r`, recursively."""
    files = [path]
    for line in path.read_text().splitlines():
        if line.startswith("-r "):
            files += _requirement_files((path.parent / line[3:].strip()).resolve())
    return files


def _fingerprint(requirements: Path) -> str:
    digest = hashlib.sha256(sys.version.encode())
    for file in _requirement_files(requirements):
        digest.update(file.read_bytes())
    return digest.hexdigest()


def cached_venv(name: str, requirements: Path) -> Venv:
    """A venv kept across runs under .cache/sdk-venvs/NAME, rebuilt only when
    `requirements` (or a file it includes) or the interpreter changed."""
    root = CACHE / "sdk-venvs" / name
    venv = Venv(root)
    stamp = root / ".requirements-sha256"
    wanted = _fingerprint(requirements)
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{name}.lock", "w") as lock:
        # Two test processes must not build the same venv at once.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == wanted and venv.python.exists():
            return venv
        if not venv.python.exists():
            create_venv(root, cwd=root.parent)
        venv.install("-r", requirements, cwd=root.parent)
        stamp.write_text(wanted)
    return venv
