"""Without authentication every route is open and the caller is anonymous."""

from __future__ import annotations

import httpx


async def test_callers_are_anonymous(client: httpx.AsyncClient) -> None:
    response = await client.get("/me")
    assert response.status_code == 200
    assert response.json() == {"subject": "anonymous", "scopes": []}
