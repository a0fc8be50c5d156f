"""JWT bearer authentication (PyJWT, HMAC with a shared secret).

Verification pins the algorithm (a token's own `alg` header is never trusted, so
`alg: none` and algorithm confusion are rejected) and requires `exp`, `iat`, `sub`,
the audience and the issuer. For tokens issued by an identity provider, generate the
project with `--auth oauth2` instead.

Verified tokens are kept in a bounded per-process cache keyed by the token: a repeat
skips the signature and claim checks (the HMAC and JSON decoding are most of the cost of
an authenticated request), never the expiry, which is checked on every request.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Literal

import jwt
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.datastructures import Headers

from .principal import AuthenticationError, Principal

MIN_SECRET_BYTES = 32
# Verified tokens kept per process; past it the oldest entry makes room.
TOKEN_CACHE_SIZE = 4096


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    jwt_secret: SecretStr
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_audience: str = "forge-app"
    jwt_issuer: str = "forge-app"
    jwt_leeway_seconds: int = Field(default=30, ge=0)
    jwt_access_token_minutes: int = Field(default=30, ge=1)

    @field_validator("jwt_secret")
    @classmethod
    def secret_long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")
        return value


def bearer_token(headers: Headers) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class JwtAuthenticator:
    required = True
    scheme = "Bearer"

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        # token -> (principal, the instant PyJWT would start refusing it as expired).
        self._verified: dict[str, tuple[Principal, float]] = {}

    def credentials(self, headers: Headers) -> str | None:
        return bearer_token(headers)

    async def authenticate(self, credentials: str) -> Principal:
        cached = self._verified.get(credentials)
        if cached is not None:
            principal, expires_at = cached
            if time.time() < expires_at:
                return principal
            del self._verified[credentials]
            raise AuthenticationError("token_expired")
        principal, expires_at = self.verify(credentials)
        if len(self._verified) >= TOKEN_CACHE_SIZE:
            # Dicts keep insertion order: the first key is the oldest entry.
            del self._verified[next(iter(self._verified))]
        self._verified[credentials] = (principal, expires_at)
        return principal

    # --8<-- [start:verify]
    def verify(self, credentials: str) -> tuple[Principal, float]:
        """The principal and the time at which the token expires (leeway included)."""
        s = self.settings
        try:
            claims = jwt.decode(
                credentials,
                s.jwt_secret.get_secret_value(),
                algorithms=[s.jwt_algorithm],
                audience=s.jwt_audience,
                issuer=s.jwt_issuer,
                leeway=s.jwt_leeway_seconds,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("token_expired") from None
        except jwt.PyJWTError:
            raise AuthenticationError("invalid_token") from None
        scopes = claims.get("scope", "")
        principal = Principal(
            subject=str(claims["sub"]),
            scopes=frozenset(scopes.split()) if isinstance(scopes, str) else frozenset(),
        )
        # PyJWT refuses a token once `exp <= now - leeway`.
        return principal, float(claims["exp"]) + s.jwt_leeway_seconds
        # --8<-- [end:verify]


# --8<-- [start:issue]
def create_access_token(
    settings: AuthSettings, subject: str, *, scopes: list[str] | None = None
) -> str:
    """Issue a token this service accepts (for a login route, scripts and tests)."""
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": subject,
        "iat": now,
        "exp": now + timedelta(minutes=settings.jwt_access_token_minutes),
        "aud": settings.jwt_audience,
        "iss": settings.jwt_issuer,
    }
    if scopes:
        claims["scope"] = " ".join(scopes)
    secret = settings.jwt_secret.get_secret_value()
    return jwt.encode(claims, secret, algorithm=settings.jwt_algorithm)
    # --8<-- [end:issue]


def build_authenticator(settings: AuthSettings) -> JwtAuthenticator:
    return JwtAuthenticator(settings)
