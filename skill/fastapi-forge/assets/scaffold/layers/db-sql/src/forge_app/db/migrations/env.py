"""Alembic environment: async engine, URL from the app's settings (DATABASE_URL)."""

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from forge_app.db.session import DatabaseSettings
from forge_app.hooks import load_hooks
from forge_app.models.database import Base

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = [Base.metadata, *load_hooks().metadata]


# --8<-- [start:url]
def database_url() -> str:
    # `alembic -x database_url=...` wins over DATABASE_URL, for one-off runs.
    return context.get_x_argument(as_dictionary=True).get(
        "database_url", DatabaseSettings().database_url
    )
    # --8<-- [end:url]


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


# --8<-- [start:async]
async def run_async_migrations() -> None:
    engine = create_async_engine(database_url(), poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_async_migrations())
    # --8<-- [end:async]
