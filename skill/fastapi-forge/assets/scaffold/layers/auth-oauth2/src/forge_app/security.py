"""OAuth2 / OpenID Connect bearer tokens, verified against the issuer's keys (JWKS).

The signing key is chosen by the token's `kid` from the issuer's JWKS (fetched by
`jwt.PyJWKClient`, cached, refreshed when an unknown `kid` appears, at most once per 30 s:
PyJWT >= 2.15, so tokens with random `kid`s cannot make it fetch per request). The accepted
algorithms are pinned to asymmetric ones, so `alg: none` and HS256-with-the-public-key
tokens are rejected; `exp`, `iat`, `sub`, the audience and the issuer are required.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Literal

import jwt
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.datastructures import Headers

from .principal import AuthenticationError, Principal

Algorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"]


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    oidc_issuer: str
    oidc_audience: str
    # Empty: discovered from <issuer>/.well-known/openid-configuration.
    oidc_jwks_url: str | None = None
    oidc_algorithms: list[Algorithm] = Field(default_factory=lambda: ["RS256"], min_length=1)
    oidc_leeway_seconds: int = Field(default=30, ge=0)
    oidc_jwks_cache_seconds: int = Field(default=300, ge=1)
    oidc_http_timeout_seconds: float = Field(default=5.0, gt=0)


def bearer_token(headers: Headers) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def fetch_json(url: str, timeout: float) -> dict[str, object]:
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"not an http(s) URL: {url}")
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - scheme checked
        document: dict[str, object] = json.load(response)
        return document


def discover_jwks_url(issuer: str, timeout: float) -> str:
    config = fetch_json(f"{issuer.rstrip('/')}/.well-known/openid-configuration", timeout)
    if config.get("issuer") != issuer:
        raise ValueError("the discovery document names another issuer")
    jwks_uri = config.get("jwks_uri")
    if not isinstance(jwks_uri, str):
        raise ValueError("the discovery document has no jwks_uri")
    return jwks_uri


class OidcAuthenticator:
    required = True
    scheme = "Bearer"

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self.client: jwt.PyJWKClient | None = None
        self.lock = asyncio.Lock()

    def credentials(self, headers: Headers) -> str | None:
        return bearer_token(headers)

    async def jwks(self) -> jwt.PyJWKClient:
        async with self.lock:
            if self.client is None:
                s = self.settings
                url = s.oidc_jwks_url or await asyncio.to_thread(
                    discover_jwks_url, s.oidc_issuer, s.oidc_http_timeout_seconds
                )
                self.client = jwt.PyJWKClient(
                    url, lifespan=s.oidc_jwks_cache_seconds, timeout=s.oidc_http_timeout_seconds
                )
            return self.client

    # --8<-- [start:verify]
    async def authenticate(self, credentials: str) -> Principal:
        s = self.settings
        try:
            client = await self.jwks()
            # PyJWKClient fetches with urllib (blocking): keep it off the event loop.
            signing_key = await asyncio.to_thread(client.get_signing_key_from_jwt, credentials)
            claims = jwt.decode(
                credentials,
                signing_key,
                algorithms=list(s.oidc_algorithms),
                audience=s.oidc_audience,
                issuer=s.oidc_issuer,
                leeway=s.oidc_leeway_seconds,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("token_expired") from None
        except (jwt.PyJWTError, OSError, ValueError):
            # Includes an unreachable issuer: the caller cannot be verified, so 401.
            raise AuthenticationError("invalid_token") from None
        scopes = claims.get("scope", claims.get("scp", ""))
        if isinstance(scopes, str):
            scopes = scopes.split()
        return Principal(
            subject=str(claims["sub"]),
            scopes=frozenset(str(scope) for scope in scopes)
            if isinstance(scopes, list)
            else frozenset(),
        )
        # --8<-- [end:verify]


def build_authenticator(settings: AuthSettings) -> OidcAuthenticator:
    return OidcAuthenticator(settings)
