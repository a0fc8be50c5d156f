"""Request-scoped dependencies: the shared resources and the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from .errors import AppError
from .middleware.auth import PRINCIPAL_KEY
from .principal import Principal
from .resources import Resources


# `async def` although nothing is awaited: FastAPI runs a plain `def` dependency in the
# thread pool, a thread hop on every request for what is only an attribute read.
# HTTPConnection, not Request: the same dependencies serve WebSocket routes.
async def get_resources(connection: HTTPConnection) -> Resources:
    resources: Resources = connection.state.resources
    return resources


async def get_principal(connection: HTTPConnection) -> Principal:
    principal = getattr(connection.state, PRINCIPAL_KEY, None)
    if not isinstance(principal, Principal):
        # Only reachable if a route is mounted outside AuthMiddleware's protection.
        raise AppError(401, "missing_credentials", "authentication required")
    return principal


ResourcesDep = Annotated[Resources, Depends(get_resources)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
