"""`python -m order_query.rebuild`: rebuilds the read model from the event log.

The log is order-command's `events` table, read through its relay's feed (GET /events), not
the broker's stream: the stream is trimmed (Redis) or deleted on acknowledgement (RabbitMQ),
while the log keeps every event, in commit order, written in the commands' own transactions.

Steps: fill a fresh table (`order_views_next`) from position 0 while the live projector
keeps serving; then, holding an exclusive lock on the live table (queries and the projector
wait for a moment), apply what was appended meanwhile and swap the tables in the same
transaction. Events the projector receives afterwards are repeats for the new table and
change nothing (version check). A failed rebuild leaves the live table untouched.
"""

import asyncio
import json
import logging
import sys
import time
from dataclasses import dataclass

import httpx
from sqlalchemy import MetaData, Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from forge_app_common import Envelope
from forge_app_platform.db import Database

from .config import Settings, get_settings
from .models import VIEWS_TABLE, order_views_table
from .projection import apply_order_event

log = logging.getLogger(__name__)
NEXT_TABLE = f"{VIEWS_TABLE}_next"
REBUILD_LOCK = 0x0F0F  # one rebuild at a time


@dataclass
class Feed:
    client: httpx.AsyncClient
    page_size: int
    after: int = 0
    events: int = 0

    async def page(self) -> list[Envelope]:
        response = await self.client.get(
            "/events", params={"after": self.after, "limit": self.page_size}
        )
        response.raise_for_status()
        body = response.json()
        self.after = int(body["next_after"])
        return [Envelope.model_validate(item["event"]) for item in body["events"]]


async def apply_pages(connection: AsyncConnection, table: Table, feed: Feed) -> None:
    """Applies the log from `feed.after` to its current end."""
    while envelopes := await feed.page():
        for envelope in envelopes:
            await apply_order_event(connection, table, envelope)
        feed.events += len(envelopes)


async def swap(connection: AsyncConnection) -> None:
    await connection.execute(text(f"DROP TABLE {VIEWS_TABLE}"))
    await connection.execute(text(f"ALTER TABLE {NEXT_TABLE} RENAME TO {VIEWS_TABLE}"))
    for old, new in (
        (f"{NEXT_TABLE}_pkey", f"{VIEWS_TABLE}_pkey"),
        (f"ix_{NEXT_TABLE}_customer", f"ix_{VIEWS_TABLE}_customer"),
    ):
        await connection.execute(text(f"ALTER INDEX {old} RENAME TO {new}"))


async def service_token(settings: Settings) -> str:
    """A token for the relay's GET /events, from user-service (client credentials)."""
    if settings.service_client_secret is None:
        raise RuntimeError(
            "SERVICE_CLIENT_SECRET is not set: order-query's client secret for "
            "user-service (`python -m user_service.keys client order-query order-command`)"
        )
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            settings.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": settings.service_name,
                "client_secret": settings.service_client_secret.get_secret_value(),
                "audience": "order-command",
            },
        )
    if response.status_code != 200:
        raise RuntimeError(
            f"{settings.token_url} refused the client credentials: {response.status_code}"
        )
    return str(response.json()["access_token"])


async def rebuild(
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None = None,
    token: str | None = None,
) -> dict[str, float]:
    started = time.monotonic()
    token = token or await service_token(settings)
    db = Database(settings)
    next_table = order_views_table(NEXT_TABLE, MetaData())
    try:
        async with (
            db.engine.connect() as guard,
            httpx.AsyncClient(
                base_url=settings.event_feed_url,
                headers={"authorization": f"Bearer {token}"},
                timeout=30,
                transport=transport,
            ) as client,
        ):
            locked = await guard.scalar(select(func.pg_try_advisory_lock(REBUILD_LOCK)))
            await guard.commit()
            if not locked:
                raise RuntimeError("another rebuild of the read model is running")
            feed = Feed(client, settings.rebuild_page_size)
            async with db.engine.begin() as connection:
                # Left behind by a rebuild that died: it is only ever a partial copy.
                await connection.execute(text(f"DROP TABLE IF EXISTS {NEXT_TABLE}"))
                await connection.run_sync(next_table.create)
            async with db.engine.begin() as connection:
                await apply_pages(connection, next_table, feed)
            async with db.engine.begin() as connection:
                await connection.execute(text(f"LOCK TABLE {VIEWS_TABLE} IN ACCESS EXCLUSIVE MODE"))
                await apply_pages(connection, next_table, feed)
                rows = await connection.scalar(select(func.count()).select_from(next_table))
                await swap(connection)
            await guard.execute(select(func.pg_advisory_unlock(REBUILD_LOCK)))
    finally:
        await db.close()
    return {
        "events": feed.events,
        "rows": rows or 0,
        "position": feed.after,
        "seconds": round(time.monotonic() - started, 3),
    }


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        summary = asyncio.run(rebuild(get_settings()))
    except (httpx.HTTPError, RuntimeError) as exc:
        log.error("rebuild failed, the live read model is unchanged: %s", exc)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
