"""Single-use tickets: how a browser reaches SSE and WebSocket routes.

`EventSource` and the browser `WebSocket` cannot send an `Authorization` header. The page
asks `POST /auth/tickets` (with its header) for a ticket, then opens
`/agents/run/stream?ticket=...` or `/agents/ws?ticket=...`. A ticket is random, lives
TICKET_TTL_SECONDS, is bound to the caller that asked for it and is consumed atomically
(GETDEL), so one that leaks through a URL in a log is already spent. Redis stores only its
SHA-256, never the ticket itself.
"""

from __future__ import annotations

import hashlib
import json
import secrets

from redis.asyncio import Redis

from .principal import Principal


def ticket_key(prefix: str, ticket: str) -> str:
    return f"{prefix}ticket:{hashlib.sha256(ticket.encode()).hexdigest()}"


async def issue_ticket(redis: Redis, prefix: str, principal: Principal, ttl_seconds: int) -> str:
    ticket = secrets.token_urlsafe(32)
    payload = {"sub": principal.subject, "scopes": sorted(principal.scopes)}
    await redis.set(ticket_key(prefix, ticket), json.dumps(payload), ex=ttl_seconds)
    return ticket


async def redeem_ticket(redis: Redis, prefix: str, ticket: str) -> Principal | None:
    """The caller the ticket was issued to, or None (unknown, expired or already used)."""
    if not ticket or len(ticket) > 128:
        return None
    raw = await redis.getdel(ticket_key(prefix, ticket))
    if raw is None:
        return None
    payload = json.loads(raw)
    return Principal(subject=payload["sub"], scopes=frozenset(payload["scopes"]))
