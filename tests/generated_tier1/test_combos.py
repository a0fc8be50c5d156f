"""Every option combination: generated, installed in its own virtualenv, linted, its own test
suite run against the real PostgreSQL and Redis, and its migrations applied and reverted."""

from __future__ import annotations

import asyncio
import re

import asyncpg
import pytest
from forge_testing import redis_database, throwaway_database
from forge_testing.scaffolding import COMBOS, FLAGS, MANIFEST, Combo

from .conftest import BuiltProjects

pytestmark = pytest.mark.e2e

SUMMARY_RE = re.compile(
    r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)"
)


def test_combos_use_every_option_value() -> None:
    """COMBOS against the scaffold's manifest: every Tier 1 option, every value."""
    options = {
        flag: spec for flag, spec in MANIFEST["options"].items() if "1" in spec["tiers"]
    }
    assert set(options) == set(FLAGS), (
        "the scaffold's Tier 1 flags changed: update COMBOS"
    )
    for flag, spec in options.items():
        values = {
            v
            for v, value in spec["values"].items()
            if "1" in value.get("tiers", spec["tiers"])
        }
        used = {getattr(combo, flag) for combo in COMBOS}
        assert used == values, f"--{flag}: values never tested: {values - used}"
    assert COMBOS[0].name == "forge-default" and all(
        getattr(COMBOS[0], flag) == spec["default"] for flag, spec in options.items()
    ), "the first combo is the defaults"


@pytest.mark.parametrize("combo", COMBOS, ids=str)
def test_ruff_clean_and_formatted(built_projects: BuiltProjects, combo: Combo) -> None:
    project = built_projects.get(combo)
    project.run([project.bin("ruff"), "check", "--no-cache", "."])
    project.run([project.bin("ruff"), "format", "--no-cache", "--check", "."])


def summary_counts(output: str) -> dict[str, int]:
    last = output.strip().splitlines()[-1] if output.strip() else ""
    return {kind.rstrip("s"): int(count) for count, kind in SUMMARY_RE.findall(last)}


@pytest.mark.parametrize("combo", COMBOS, ids=str)
def test_generated_test_suite_passes(
    built_projects: BuiltProjects, combo: Combo, pg_admin_url: str, redis_base_url: str
) -> None:
    project = built_projects.get(combo)
    argv = [project.python, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]
    if combo.db == "mongodb":
        # No MongoDB server package on these machines: its database tests are deselected
        # (README); everything else in the project still runs.
        argv += ["-m", "not mongodb"]
    with (
        throwaway_database(pg_admin_url, prefix="forge_e2e") as database_url,
        redis_database(redis_base_url) as redis_url,
    ):
        result = project.run(
            argv, TEST_DATABASE_URL=database_url, REDIS_URL=redis_url, timeout=900
        )
    counts = summary_counts(result.stdout)
    print(f"{combo}: {result.stdout.strip().splitlines()[-1]}")
    assert counts.get("passed", 0) > 0, result.stdout
    assert counts.get("skipped", 0) == 0, (
        f"a skipped test hides a missing service:\n{result.stdout}"
    )


async def table_names(url: str) -> set[str]:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch(
            "select tablename from pg_tables where schemaname = 'public'"
        )
    finally:
        await conn.close()
    return {row["tablename"] for row in rows}


@pytest.mark.parametrize("combo", [c for c in COMBOS if c.db == "postgres"], ids=str)
def test_alembic_upgrade_and_downgrade(
    built_projects: BuiltProjects, combo: Combo, pg_admin_url: str
) -> None:
    project = built_projects.get(combo)
    alembic = project.bin("alembic")
    with throwaway_database(pg_admin_url, prefix="forge_alembic") as database_url:
        project.run([alembic, "upgrade", "head"], DATABASE_URL=database_url)
        tables = asyncio.run(table_names(database_url))
        assert "alembic_version" in tables
        assert tables - {"alembic_version"}, f"upgrade head created no tables: {tables}"
        current = project.run([alembic, "current"], DATABASE_URL=database_url).stdout
        assert "(head)" in current, current

        project.run([alembic, "downgrade", "base"], DATABASE_URL=database_url)
        left = asyncio.run(table_names(database_url)) - {"alembic_version"}
        assert not left, f"downgrade base left tables behind: {left}"

        # Round trip: the migrations apply again on the downgraded database.
        project.run([alembic, "upgrade", "head"], DATABASE_URL=database_url)
