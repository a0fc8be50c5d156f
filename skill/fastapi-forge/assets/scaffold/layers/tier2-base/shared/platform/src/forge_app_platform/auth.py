"""Bearer JWTs: signed by user-service alone (RS256, its private key), checked at the
gateway and again by each service with user-service's public keys (zero trust inside the
cluster: a request that bypasses the gateway is still refused, and no other service holds
a key that can sign a token).

Two kinds of token, never interchangeable: a user's (audience JWT_AUDIENCE, subject the
user's id) and a service's (client-credentials grant: audience the called service's name,
`token_use: service`, subject the calling service's client id).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

import jwt
from fastapi import Depends, HTTPException, Request, status

from .settings import ServiceSettings, VerifyingSettings

ALGORITHMS = ["RS256"]  # pinned: an HS256 token keyed with the public key is refused
SERVICE_USE = "service"


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    # The calling service's client id for a service token; None for a user's.
    service: str | None = None


class KeySource(Protocol):
    async def key_for(self, kid: str) -> Any: ...


class JwksKeys:
    """User-service's public keys from its JWKS URL: PyJWKClient caches the set for
    JWKS_CACHE_SECONDS and refetches on an unknown `kid` at most once per
    JWKS_REFETCH_SECONDS, so a flood of made-up `kid`s cannot hammer user-service."""

    def __init__(self, settings: VerifyingSettings) -> None:
        self.client = jwt.PyJWKClient(
            settings.jwks_url,
            lifespan=settings.jwks_cache_seconds,
            cooldown_duration=settings.jwks_refetch_seconds,
            timeout=settings.jwks_timeout_seconds,
        )

    async def key_for(self, kid: str) -> Any:
        cache = self.client.jwk_set_cache
        cached = cache.get() if cache is not None else None
        if isinstance(cached, jwt.PyJWKSet):
            # Hot path: a cached key set answers without a thread hop.
            for key in cached.keys:
                if key.key_id == kid:
                    return key
        # PyJWKClient fetches with urllib (blocking): keep it off the event loop.
        return await asyncio.to_thread(self.client.get_signing_key, kid)


class TokenVerifier:
    def __init__(self, settings: ServiceSettings, keys: KeySource) -> None:
        self.settings = settings
        self.keys = keys

    async def verify(self, token: str, *, service: bool = False) -> Principal:
        """A user's token, or with `service` a service token addressed to this service."""
        s = self.settings
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            if not isinstance(kid, str) or not kid:
                raise jwt.InvalidTokenError("no kid")
            claims = jwt.decode(
                token,
                await self.keys.key_for(kid),
                algorithms=ALGORITHMS,
                audience=s.service_name if service else s.jwt_audience,
                issuer=s.jwt_issuer,
                leeway=s.jwt_leeway_seconds,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except (jwt.PyJWTError, OSError) as exc:
            # Includes an unreachable JWKS URL: the caller cannot be verified, so 401.
            raise invalid_token() from exc
        if (claims.get("token_use") == SERVICE_USE) != service:
            raise invalid_token()
        subject = str(claims["sub"])
        return Principal(subject=subject, service=subject if service else None)


def invalid_token() -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "the token is invalid or expired",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


async def current_principal(request: Request) -> Principal:
    tokens: TokenVerifier = request.app.state.runtime.tokens
    return await tokens.verify(bearer_token(request))


async def calling_service(request: Request) -> Principal:
    tokens: TokenVerifier = request.app.state.runtime.tokens
    return await tokens.verify(bearer_token(request), service=True)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
CallingService = Annotated[Principal, Depends(calling_service)]
