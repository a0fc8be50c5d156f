"""The test tree's own layout. pytest.ini puts `tests/` on sys.path, so a folder there named
like an installed module (`packaging`, `yaml`, ...) hides that module from every test and every
library a test imports; CI once failed on `import kubernetes_validate` for exactly that reason."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent


def test_no_test_folder_shadows_an_installed_module() -> None:
    installed = set(importlib.metadata.packages_distributions())
    shadowing = sorted(
        entry.name
        for entry in TESTS.iterdir()
        if entry.is_dir() and entry.name in installed
    )
    assert not shadowing, (
        f"tests/{shadowing[0]} hides the installed module of the same name from every test "
        "(pytest.ini: pythonpath = tests); rename the folder"
    )
