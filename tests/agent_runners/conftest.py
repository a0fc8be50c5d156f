"""The per-SDK checks in runner_checks/ run inside their SDK's own venv (test_sdk_runners.py
starts them), never in the repo's venv, which has none of the SDKs."""

import sys
from pathlib import Path

import pytest

collect_ignore = ["runner_checks"]

# The shared fake model servers (`fakes`), for the tests of generated apps.
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session", autouse=True)
def sdk_venvs() -> None:
    from sdk_venvs import ensure_all_sdk_venvs

    ensure_all_sdk_venvs()
