"""PostgreSQL through SQLAlchemy 2 (async) and asyncpg.

The schema is Alembic's business (`alembic upgrade head` before start-up); the app never
creates tables itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

# Errors meaning "the database is down" (answered 503, not 500).
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    PoolTimeoutError,
    ConnectionError,
)


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = "postgresql+asyncpg://postgres@localhost:5432/forge_app"
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0)
    db_echo: bool = False


class Database:
    def __init__(self, settings: DatabaseSettings) -> None:
        self.engine = create_async_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout_seconds,
            # Connections dropped by a database restart are replaced, not handed out.
            pool_pre_ping=True,
            echo=settings.db_echo,
            # Errors (and DB_ECHO) show the SQL without its values: they may be secrets.
            hide_parameters=True,
            connect_args={"timeout": settings.db_pool_timeout_seconds},
        )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()


async def open_database(settings: DatabaseSettings) -> Database:
    return Database(settings)


# --8<-- [start:session]
async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A transaction per request for your own routes (`session: SessionDep`): committed
    when the route returns, rolled back if it raises."""
    database: Database = request.state.resources.database
    async with database.sessions.begin() as session:
        yield session


# scope="function": the commit runs before the response is sent, so a failed commit is a
# 500, not a 200 for a change that was never stored (the default runs it afterwards).
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
# --8<-- [end:session]
