"""Each SDK runner's checks (runner_checks/<sdk with _ for ->_checks.py), run in its own venv."""

from __future__ import annotations

import subprocess

import pytest
from sdk_venvs import HERE, SDKS, ensure_sdk_venv


@pytest.mark.parametrize("sdk", SDKS)
def test_runner_checks_pass_with_the_real_sdk(sdk: str) -> None:
    python = ensure_sdk_venv(sdk).python
    checks = HERE / "runner_checks"
    done = subprocess.run(
        [
            str(python),
            "-m",
            "pytest",
            "-c",
            str(checks / "pytest.ini"),
            "-q",
            "-p",
            "no:warnings",
            str(checks / f"{sdk.replace('-', '_')}_checks.py"),
        ],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{sdk} checks failed:\n{done.stdout}\n{done.stderr}"
    # A module whose tests were all skipped or deselected would exit 0 too.
    assert " passed" in done.stdout and " skipped" not in done.stdout, done.stdout
