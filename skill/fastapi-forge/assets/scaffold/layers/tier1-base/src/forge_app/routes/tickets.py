"""`POST /auth/tickets`: a single-use ticket for the browser's SSE and WebSocket clients."""

from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel

from ..dependencies import PrincipalDep, ResourcesDep
from ..tickets import issue_ticket

router = APIRouter(prefix="/auth", tags=["auth"])


class TicketResponse(BaseModel):
    ticket: str
    expires_in: int


# --8<-- [start:tickets]
@router.post("/tickets", status_code=status.HTTP_201_CREATED)
async def create_ticket(principal: PrincipalDep, resources: ResourcesDep) -> TicketResponse:
    """A ticket for one `?ticket=` on `GET /agents/run/stream` or `WS /agents/ws`: single
    use, bound to the caller, valid TICKET_TTL_SECONDS."""
    settings = resources.settings
    ticket = await issue_ticket(
        resources.redis, settings.redis_key_prefix, principal, settings.ticket_ttl_seconds
    )
    return TicketResponse(ticket=ticket, expires_in=settings.ticket_ttl_seconds)
    # --8<-- [end:tickets]
