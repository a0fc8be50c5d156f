"""Builds every combination once per session: scaffold, then a virtualenv of its own.

The installs run a few at a time (they mostly wait on downloads and unpacking); a combo whose
build failed fails its own tests with the build's output, not the other combos' tests.
"""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import pytest
from forge_testing.scaffolding import COMBOS, Combo

from .project import InstalledProject

INSTALL_PARALLELISM = 3


class BuiltProjects:
    def __init__(self, parent: Path) -> None:
        self.parent = parent
        self.results: dict[str, InstalledProject | BaseException] = {}
        self.wall_seconds = 0.0

    def build_all(self) -> None:
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(INSTALL_PARALLELISM) as pool:
            futures = {pool.submit(self._build, combo): combo for combo in COMBOS}
            for future in concurrent.futures.as_completed(futures):
                combo = futures[future]
                error = future.exception()
                self.results[combo.name] = (
                    error if error is not None else future.result()
                )
        self.wall_seconds = time.monotonic() - started

    def _build(self, combo: Combo) -> InstalledProject:
        started = time.monotonic()
        project = InstalledProject(combo=combo, root=combo.scaffold(self.parent))
        project.timings["scaffold"] = time.monotonic() - started
        project.install()
        return project

    def get(self, combo: Combo) -> InstalledProject:
        result = self.results[combo.name]
        if isinstance(result, BaseException):
            pytest.fail(
                f"building {combo} ({' '.join(combo.flags())}) failed:\n{result}",
                pytrace=False,
            )
        return result


@pytest.fixture(scope="session")
def built_projects(tmp_path_factory: pytest.TempPathFactory) -> BuiltProjects:
    built = BuiltProjects(tmp_path_factory.mktemp("tier1-projects"))
    built.build_all()
    for name, result in sorted(built.results.items()):
        timings = result.timings if isinstance(result, InstalledProject) else {}
        print(
            f"\n[e2e] {name}: {', '.join(f'{k} {v:.0f}s' for k, v in timings.items()) or 'FAILED'}"
        )
    print(f"[e2e] all projects built in {built.wall_seconds:.0f}s")
    return built


@pytest.fixture(scope="session")
def scaffolded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Scaffold output only (no virtualenv), for checks of generated files."""
    parent = tmp_path_factory.mktemp("tier1-scaffold-only")
    return {combo.name: combo.scaffold(parent) for combo in COMBOS}
