"""fastapi-forge's claude.ai package: within claude.ai's upload limits (200 files, 30 MB), its
scaffold layers carried as one bundle file, and the scaffold it ships, run from the unzipped
package, generating the same projects byte for byte as the repository's. The default package
keeps every file of the skill, as before bundles existed."""

from __future__ import annotations

import json
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest
from forge_testing import REPO_ROOT, SKILL
from forge_testing.scaffolding import scaffold

from .skills import build_release_binary

MAX_UPLOAD_FILES = 200
MAX_UPLOAD_BYTES = 30 * 1000 * 1000
# What pack never ships (built-in exclusions): the config, and caches a test run may leave.
NOT_SHIPPED = {"skillcheck.toml"}
CACHE_PARTS = {"__pycache__", ".ruff_cache", ".pytest_cache", ".mypy_cache"}


def pack(out: Path, *target: str) -> dict[str, object]:
    result = subprocess.run(
        [
            build_release_binary(),
            "pack",
            str(SKILL),
            "-o",
            str(out),
            "--format",
            "json",
            *target,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    info: dict[str, object] = json.loads(result.stdout)
    return info


@pytest.fixture(scope="module")
def claude_ai_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    package = tmp_path_factory.mktemp("claude-ai") / "fastapi-forge.skill"
    info = pack(package, "--target", "claude-ai")
    print(
        f"claude-ai package: {info['entries']} entries, {info['bytes']} bytes "
        f"({info['uncompressed_bytes']} uncompressed)"
    )
    return package


@pytest.fixture(scope="module")
def unpacked(claude_ai_package: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(claude_ai_package) as archive:
        archive.extractall(root)
    return root / "fastapi-forge"


def test_the_upload_fits_claude_ai_and_carries_the_layers_as_one_file(
    claude_ai_package: Path, unpacked: Path
) -> None:
    with zipfile.ZipFile(claude_ai_package) as archive:
        entries = archive.infolist()
    assert len(entries) <= MAX_UPLOAD_FILES
    assert sum(entry.file_size for entry in entries) <= MAX_UPLOAD_BYTES
    scaffold = unpacked / "assets" / "scaffold"
    assert not (scaffold / "layers").exists()
    bundle = (scaffold / "layers.bundle.txt").read_bytes()
    assert bundle.startswith(b"skillcheck-bundle 1\n")
    layers = SKILL / "assets" / "scaffold" / "layers"
    layer_files = [
        path
        for path in layers.rglob("*")
        if path.is_file()
        and not CACHE_PARTS.intersection(path.relative_to(layers).parts)
    ]
    assert bundle.count(b"\n=== ") == len(layer_files)


def generated(out: Path) -> dict[str, tuple[bytes, bool]]:
    """Each file's bytes and executable bit."""
    return {
        path.relative_to(out).as_posix(): (
            path.read_bytes(),
            bool(path.stat().st_mode & stat.S_IXUSR),
        )
        for path in sorted(out.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize(
    ("tier", "options"),
    [
        (1, {}),
        (2, {"name": "shop", "broker": "rabbitmq", "agent": "langgraph"}),
        (3, {"name": "orders"}),
    ],
    ids=["tier1-default", "tier2", "tier3"],
)
def test_the_packed_scaffold_generates_the_repository_s_projects(
    unpacked: Path, tier: int, options: dict[str, str], tmp_path: Path
) -> None:
    expected = generated(scaffold(tmp_path / "repo", tier=tier, **options))
    packed_script = unpacked / "scripts" / "scaffold_fastapi.py"
    packed = generated(
        scaffold(tmp_path / "packed", tier=tier, script=packed_script, **options)
    )
    assert len(expected) > 50
    assert sorted(packed) == sorted(expected)
    assert [path for path in expected if packed[path] != expected[path]] == []


def test_the_default_package_keeps_every_file_of_the_skill(tmp_path: Path) -> None:
    package = tmp_path / "fastapi-forge.skill"
    pack(package)
    tree = {
        path.relative_to(SKILL).as_posix(): (
            path.read_bytes(),
            bool(path.stat().st_mode & stat.S_IXUSR),
        )
        for path in SKILL.rglob("*")
        if path.is_file()
        and path.name not in NOT_SHIPPED
        and not CACHE_PARTS.intersection(path.relative_to(SKILL).parts)
    }
    with zipfile.ZipFile(package) as archive:
        shipped = {
            info.filename.removeprefix("fastapi-forge/"): (
                archive.read(info),
                bool((info.external_attr >> 16) & stat.S_IXUSR),
            )
            for info in archive.infolist()
        }
    assert sorted(shipped) == sorted(tree)
    assert [path for path in tree if shipped[path] != tree[path]] == []
