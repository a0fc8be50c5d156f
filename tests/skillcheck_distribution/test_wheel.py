"""The Python distribution `skillcheck-rs`: a wheel of the binary built with maturin from
pyproject.toml, installed into a fresh virtualenv (uv) with nothing else, where the
`skillcheck` command it puts on the venv's PATH lints skills, this repository's included.

The wheel is built once per run, in the release profile and target directory that
scripts/test already built: cargo finds the binary up to date and maturin only packs it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from forge_testing import REPO_ROOT
from forge_testing.venvs import create_venv

from .skills import CRATE_VERSION, build_release_binary, write_skill

VENV_BIN = Path(sys.executable).parent
MATURIN = VENV_BIN / "maturin"
DISTRIBUTION = "skillcheck-rs"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    build_release_binary()
    out = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [MATURIN, "build", "--release", "--locked", "--out", out],
        cwd=REPO_ROOT,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    [built] = out.glob("*.whl")
    return built


def test_wheel_is_the_binary_under_the_non_colliding_name(wheel: Path) -> None:
    assert wheel.name.startswith(f"skillcheck_rs-{CRATE_VERSION}-py3-none-"), wheel.name
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        dist_info = f"skillcheck_rs-{CRATE_VERSION}.dist-info"
        metadata = Parser().parsestr(zf.read(f"{dist_info}/METADATA").decode())
        script = zf.getinfo(f"skillcheck_rs-{CRATE_VERSION}.data/scripts/skillcheck")
    assert metadata["Name"] == DISTRIBUTION
    assert metadata["Version"] == CRATE_VERSION
    assert metadata["License-Expression"] == "MIT"
    assert "uv tool install skillcheck-rs" in metadata.get_payload()  # the crate README
    assert script.external_attr >> 16 & 0o111, "the binary must be executable"
    # Nothing importable: the wheel carries the command only.
    assert not [n for n in names if n.endswith((".py", ".so"))], names


def test_fresh_venv_gets_a_working_skillcheck(wheel: Path, tmp_path: Path) -> None:
    # --no-index: the wheel needs nothing from PyPI.
    venv = create_venv(tmp_path / "venv", "--no-index", wheel, cwd=tmp_path)
    skillcheck = venv.bin("skillcheck")

    version = subprocess.run(
        [skillcheck, "--version"], capture_output=True, text=True, check=False
    )
    assert version.stdout.strip() == f"skillcheck {CRATE_VERSION}"

    repo_skill = subprocess.run(
        [skillcheck, "lint", "--deny-warnings", "skill"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert repo_skill.returncode == 0, repo_skill.stdout + repo_skill.stderr
    assert "0 errors, 0 warnings" in repo_skill.stdout

    write_skill(tmp_path / "skills", broken=True)
    broken = subprocess.run(
        [skillcheck, "lint", "skills"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert broken.returncode == 1
    assert (
        "error[LNK001]: link target `references/missing.md` does not exist"
        in broken.stdout
    )
    print(f"$ {skillcheck} lint skills\n{broken.stdout}")
