"""Who am I: the authenticated caller, as the server sees it (useful to check credentials)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from ..dependencies import PrincipalDep

router = APIRouter(tags=["identity"])


class IdentityResponse(BaseModel):
    subject: str
    scopes: list[str]


@router.get("/me")
async def me(principal: PrincipalDep) -> IdentityResponse:
    return IdentityResponse(subject=principal.subject, scopes=sorted(principal.scopes))
