"""Where things are: the repository, the skill's assets and the download caches every
virtualenv the tests make shares with scripts/python-env."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SKILL = REPO_ROOT / "skill" / "fastapi-forge"
TEMPLATES = SKILL / "assets" / "templates"
CACHE = REPO_ROOT / ".cache"
PIP_CACHE_DIR = CACHE / "pip"
UV_CACHE_DIR = CACHE / "uv"
