"""The per-SDK checks in runner_checks/ run inside their SDK's own venv (test_sdk_runners.py
starts them), never in the repo's venv, which has none of the SDKs."""

import sys
from pathlib import Path

collect_ignore = ["runner_checks"]

# The shared fake model servers (`fakes`), for the tests of generated apps.
sys.path.insert(0, str(Path(__file__).resolve().parent))
