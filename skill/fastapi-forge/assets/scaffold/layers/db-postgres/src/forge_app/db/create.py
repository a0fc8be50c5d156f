"""Create the PostgreSQL database the app uses, when it does not exist yet.

    python -m forge_app.db.create        # the database named in DATABASE_URL
    python -m forge_app.db.create URL    # another one

Run it once before `alembic upgrade head`; running it again changes nothing. It needs no
PostgreSQL client tools: it connects with the same user to the server's `postgres` database
(`template1` when that one is missing) and issues CREATE DATABASE, which needs the CREATEDB
privilege. Without that privilege it says so and how to have the database created instead.
"""

from __future__ import annotations

import asyncio
import sys

import asyncpg
from sqlalchemy.engine import URL, make_url

from .session import DatabaseSettings

MAINTENANCE_DATABASES = ("postgres", "template1")
CONNECT_TIMEOUT_SECONDS = 10.0


class CreateDatabaseError(Exception):
    """A problem the user can fix; printed without a traceback."""


def libpq_dsn(url: URL, database: str) -> str:
    # asyncpg takes libpq URLs: the SQLAlchemy driver suffix (`+asyncpg`) must go.
    return url.set(drivername="postgresql", database=database).render_as_string(hide_password=False)


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def create_database(database_url: str) -> bool:
    """Creates the database `database_url` names; True if created, False if it existed."""
    url = make_url(database_url)
    name = url.database
    if not name:
        raise CreateDatabaseError(f"{safe(url)} names no database: end it with /<database>")
    try:
        # Connecting to the database itself first also works where the user may not reach
        # the maintenance databases (managed PostgreSQL), as long as it exists.
        connection = await asyncpg.connect(libpq_dsn(url, name), timeout=CONNECT_TIMEOUT_SECONDS)
    except asyncpg.InvalidCatalogNameError:
        pass
    except (OSError, TimeoutError) as error:
        raise CreateDatabaseError(
            f"cannot reach PostgreSQL at {url.host or 'localhost'}:{url.port or 5432} "
            f"({error}): is it running, and is DATABASE_URL right? ({safe(url)})"
        ) from None
    else:
        await connection.close()
        return False

    connection = await connect_maintenance(url)
    try:
        await connection.execute(f"CREATE DATABASE {quote_identifier(name)}")
    except asyncpg.DuplicateDatabaseError:
        return False  # created by someone else meanwhile
    except asyncpg.InsufficientPrivilegeError:
        raise CreateDatabaseError(
            f"user {url.username or '(default)'!r} may not create databases: ask an administrator "
            f"to run `CREATE DATABASE {quote_identifier(name)} OWNER {url.username or 'postgres'}`"
            f", or run `createdb -h {url.host or 'localhost'} -p {url.port or 5432} -U "
            f"<admin user> -O {url.username or 'postgres'} {name}`"
        ) from None
    finally:
        await connection.close()
    return True


async def connect_maintenance(url: URL) -> asyncpg.Connection:
    for database in MAINTENANCE_DATABASES:
        try:
            return await asyncpg.connect(libpq_dsn(url, database), timeout=CONNECT_TIMEOUT_SECONDS)
        except asyncpg.InvalidCatalogNameError:
            continue
    raise CreateDatabaseError(
        f"{safe(url)}: the database does not exist and none of "
        f"{', '.join(MAINTENANCE_DATABASES)} is there to connect to and create it"
    )


def safe(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def main(argv: list[str]) -> int:
    if len(argv) > 1 or (argv and argv[0].startswith("-")):
        print("usage: python -m forge_app.db.create [DATABASE_URL]", file=sys.stderr)
        return 2
    database_url = argv[0] if argv else DatabaseSettings().database_url
    try:
        created = asyncio.run(create_database(database_url))
    except (CreateDatabaseError, asyncpg.PostgresError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    name = make_url(database_url).database
    print(f"database {name!r} {'created' if created else 'already exists'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
