"""One virtual environment per agent SDK, under `.cache/sdk-venvs/<sdk>`.

The SDKs pin conflicting dependencies and are heavy (the Claude Agent SDK wheel carries a
400 MB CLI), so none of them goes into the repo's test venv. Each venv is built from
`requirements-<sdk>.txt` with uv (from the repo's test venv) and rebuilt only when those
requirements (or the files they include) change; downloads are cached in `.cache/uv`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CACHE = REPO / ".cache"
UV = Path(sys.executable).parent / "uv"
# The interpreter the test venv was made from: uv must never download one.
BASE_PYTHON = Path(sys.base_prefix) / "bin" / "python3"
SDKS = ("anthropic", "claude-agent-sdk", "openai-agents", "langgraph", "crewai")


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


def ensure_sdk_venv(sdk: str) -> Path:
    """The venv's python for `sdk`, created or refreshed when its requirements changed."""
    requirements = HERE / f"requirements-{sdk}.txt"
    venv = CACHE / "sdk-venvs" / sdk
    python = venv / "bin" / "python"
    stamp = venv / ".requirements-sha256"
    wanted = _fingerprint(requirements)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{sdk}.lock", "w") as lock:
        # Two test processes must not build the same venv at once.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == wanted and python.exists():
            return python
        if not python.exists():
            _uv("venv", "--clear", "--python", str(BASE_PYTHON), str(venv))
        install(python, "-r", str(requirements))
        stamp.write_text(wanted)
    return python


def install(python: Path, *args: str) -> None:
    """`uv pip install` into the venv of `python`, with the shared download cache.

    Byte-code is compiled at install time, as pip does: the tests run with
    PYTHONDONTWRITEBYTECODE=1, and without .pyc files every check process would compile the
    SDK again (over 3,000 modules for `anthropic`, about 10 s each time)."""
    _uv("pip", "install", "--python", str(python), "--compile-bytecode", *args)


def _uv(*args: str) -> None:
    command = [str(UV), *args, "--quiet"]
    env = {"UV_CACHE_DIR": str(CACHE / "uv"), **os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")


def ensure_all_sdk_venvs() -> None:
    """Build the missing venvs side by side: each is mostly download time, and crewai's alone
    (lancedb, pyarrow, chromadb, onnxruntime) takes about four minutes on a cold cache."""
    with ThreadPoolExecutor(max_workers=len(SDKS)) as pool:
        for _python in pool.map(ensure_sdk_venv, SDKS):
            pass
