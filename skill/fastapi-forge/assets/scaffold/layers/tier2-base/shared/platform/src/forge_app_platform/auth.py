"""Bearer JWTs: issued by user-service, checked at the gateway and again by each service
(zero trust inside the cluster: a request that bypasses the gateway is still refused)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Request, status

from .settings import ServiceSettings

# What the system issues tells the two kinds of token apart: user-service gives a user a
# token whose subject is the user's id (a UUID), and a service's own job signs one whose
# subject is "<service-name>:<job>" (order-query's rebuild: "order-query:rebuild"). No user
# can get a subject of that form, so it is what marks a service token.
SERVICE_SUBJECT = re.compile(r"([a-z][a-z0-9-]{0,62}):[a-z][a-z0-9-]{0,62}")


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str

    @property
    def service(self) -> str | None:
        """The calling service's name for a service token; None for a user's."""
        match = SERVICE_SUBJECT.fullmatch(self.subject)
        return match.group(1) if match else None


class TokenService:
    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.key = settings.jwt_secret.get_secret_value()

    def issue(self, subject: str) -> tuple[str, int]:
        lifetime = timedelta(minutes=self.settings.jwt_access_token_minutes)
        now = datetime.now(UTC)
        claims = {
            "sub": subject,
            "aud": self.settings.jwt_audience,
            "iss": self.settings.jwt_issuer,
            "iat": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(claims, self.key, algorithm=self.settings.jwt_algorithm)
        return token, int(lifetime.total_seconds())

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=[self.settings.jwt_algorithm],  # exactly one: no alg confusion
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.InvalidTokenError as exc:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "the token is invalid or expired",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            ) from exc
        return Principal(subject=str(claims["sub"]))


async def current_principal(request: Request) -> Principal:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    tokens: TokenService = request.app.state.runtime.tokens
    return tokens.verify(token.strip())


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
