"""One virtual environment per agent SDK, under `.cache/sdk-venvs/<sdk>`.

The SDKs pin conflicting dependencies and are heavy (the Claude Agent SDK wheel carries a
400 MB CLI), so none of them goes into the repo's test venv. Each venv is built from
`requirements-<sdk>.txt` by forge_testing.venvs.cached_venv and rebuilt only when those
requirements (or the files they include) change.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from forge_testing.venvs import Venv, cached_venv

HERE = Path(__file__).resolve().parent
SDKS = ("anthropic", "claude-agent-sdk", "openai-agents", "langgraph", "crewai")


def ensure_sdk_venv(sdk: str) -> Venv:
    """The venv of `sdk`, created or refreshed when its requirements changed."""
    return cached_venv(sdk, HERE / f"requirements-{sdk}.txt")


def ensure_all_sdk_venvs() -> None:
    """Build the missing venvs side by side: each is mostly download time, and crewai's alone
    (lancedb, pyarrow, chromadb, onnxruntime) takes about four minutes on a cold cache."""
    with ThreadPoolExecutor(max_workers=len(SDKS)) as pool:
        for _venv in pool.map(ensure_sdk_venv, SDKS):
            pass
