"""The baseline of scripts/bench-app: the generated app's `GET /me` route with nothing around it.

Same response model and the same answer as the generated route, no middleware, no
authentication, no metrics; served by the same uvicorn with the same flags.
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel


class IdentityResponse(BaseModel):
    subject: str
    scopes: list[str]


app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/me")
async def me() -> IdentityResponse:
    return IdentityResponse(subject="bench", scopes=[])
