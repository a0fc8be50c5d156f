"""SKILL.md's commands, run as written: for each tier the first ```bash block that calls
`scaffold_fastapi.py --tier N`, in a copy of the skill (so `scripts/...` resolves as it
does for an agent working from the skill folder), with only the service locations in the
environment, as a user's shell would have them; and the locator of FastAPI's official
skill, which must not fail before FastAPI is installed."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from forge_testing import REPO_ROOT, clean_env, redis_database, run, throwaway_database
from forge_testing.venvs import UV

pytestmark = pytest.mark.e2e

SKILL = REPO_ROOT / "skill" / "fastapi-forge"
BASH_BLOCK = re.compile(r"^```(?:bash|sh)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def bash_blocks(markdown: str) -> list[str]:
    return [match.group(1) for match in BASH_BLOCK.finditer(markdown)]


def block_with(markdown: str, needle: str, where: Path) -> str:
    for block in bash_blocks(markdown):
        if needle in block:
            return block
    pytest.fail(f"{where}: no ```bash block contains {needle!r}", pytrace=False)


def user_shell_env(tmp_path: Path, **services: str) -> dict[str, str]:
    """A clean environment whose PATH has `uv` and the system's Python (no virtualenv)."""
    tools = tmp_path / "tools"
    tools.mkdir(exist_ok=True)
    (tools / "uv").symlink_to(UV)
    env = clean_env(**services)
    env["PATH"] = f"{tools}{os.pathsep}{env['PATH']}"
    env.pop("VIRTUAL_ENV", None)
    return env


# Test runs (`pytest -q` summaries) each block makes: Tier 1 one; Tiers 2 and 3 one per
# package (shared/common, shared/platform, gateway, the services).
PACKAGE_RUNS = {1: 1, 2: 6, 3: 8}


@pytest.mark.parametrize("tier", [1, 2, 3])
def test_skill_md_commands_work(
    tier: int, tmp_path: Path, pg_admin_url: str, redis_base_url: str
) -> None:
    skill_md = SKILL / "SKILL.md"
    block = block_with(
        skill_md.read_text(), f"scaffold_fastapi.py --tier {tier}", skill_md
    )
    workdir = tmp_path / "skill"
    shutil.copytree(
        SKILL, workdir, ignore=shutil.ignore_patterns("__pycache__", ".ruff_cache")
    )
    pg = urlsplit(pg_admin_url)
    libpq = {
        "PGHOST": pg.hostname or "127.0.0.1",
        "PGPORT": str(pg.port or 5432),
        "PGUSER": pg.username or "postgres",
    }
    # Tiers 2 and 3 make a database per package, named after the system.
    system = re.search(r"--tier [23] --name (\S+)", block)
    with (
        redis_database(redis_base_url) as redis_url,
        redis_database(redis_base_url) as broker_url,
        throwaway_database(pg_admin_url, prefix="skill_cmds") as database_url,
    ):
        env = user_shell_env(
            tmp_path, REDIS_URL=redis_url, BROKER_URL=broker_url, **libpq
        )
        # Tier 1's tests read DATABASE_URL, as from a user's shell: the database the
        # block creates if it runs `createdb NAME`, else one made for the test.
        env["DATABASE_URL"] = database_url
        created = re.search(r"^createdb (\w+)", block, re.MULTILINE)
        if created:
            name = created.group(1)
            run(["dropdb", "--if-exists", name], cwd=tmp_path, env=env)
            env["DATABASE_URL"] = database_url.rsplit("/", 1)[0] + f"/{name}"
        try:
            result = run(
                ["bash", "-eo", "pipefail", "-c", block],
                cwd=workdir,
                env=env,
                timeout=2400,
            )
        finally:
            # Tier 1's tests make DATABASE_URL's database + `_test` when it is missing.
            made = env["DATABASE_URL"].rsplit("/", 1)[1]
            dropped = [f"{made}_test", *([made] if created else [])]
            if system:
                dropped += databases_named(
                    pg_admin_url, system.group(1).replace("-", "_") + "_test_"
                )
            for name in dropped:
                run(["dropdb", "--if-exists", name], cwd=tmp_path, env=env, check=False)
    summaries = re.findall(r"^.*\d+ passed.*$", result.stdout, re.MULTILINE)
    assert len(summaries) == PACKAGE_RUNS[tier], result.stdout
    assert not [s for s in summaries if "skipped" in s], summaries


def databases_named(admin_url: str, prefix: str) -> list[str]:
    import asyncpg

    async def names() -> list[str]:
        conn = await asyncpg.connect(admin_url, timeout=15)
        try:
            rows = await conn.fetch(
                "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", prefix
            )
        finally:
            await conn.close()
        return [row["datname"] for row in rows]

    return asyncio.run(names())


def test_official_skill_locator_works_before_fastapi_is_installed(
    tmp_path: Path,
) -> None:
    skill_md = SKILL / "SKILL.md"
    block = block_with(skill_md.read_text(), "find_spec('fastapi')", skill_md)
    env = user_shell_env(tmp_path)
    probe = run(["python3", "-c", "import fastapi"], cwd=tmp_path, env=env, check=False)
    assert probe.returncode != 0, "this test needs a python3 without FastAPI"
    result = run(["bash", "-eo", "pipefail", "-c", block], cwd=tmp_path, env=env)
    assert "not installed" in result.stdout.lower(), result.stdout
