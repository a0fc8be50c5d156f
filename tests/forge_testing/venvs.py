"""Virtualenvs made with uv, with the one download cache of .cache/uv."""

from __future__ import annotations

import sys
from pathlib import Path

# uv comes from the repository's test venv (tests/requirements.txt); the venvs it makes use
# the interpreter that venv was made from, never one uv would download.
UV = Path(sys.executable).parent / "uv"
BASE_PYTHON = Path(sys.base_prefix) / "bin" / "python3"
