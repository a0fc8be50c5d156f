"""API key authentication: `X-API-Key: <key>`.

Only SHA-256 digests of the keys are configured (API_KEYS maps a client name to its
digest), so a leaked configuration does not leak usable keys. Keys are random 256-bit
tokens, not passwords, so a fast hash is enough; every digest is compared with
`hmac.compare_digest`, so timing does not reveal which prefix matched.

Make a key: `python -m forge_app.cli api-key NAME` (see `cli.py`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.datastructures import Headers

from .principal import AuthenticationError, Principal


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # {"client-name": "<sha256 hex of its key>"}
    api_keys: dict[str, str] = Field(default_factory=dict)
    api_key_header: str = "X-API-Key"

    @field_validator("api_keys")
    @classmethod
    def digests_are_sha256(cls, value: dict[str, str]) -> dict[str, str]:
        for name, digest in value.items():
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
                raise ValueError(f"API_KEYS[{name!r}] must be a SHA-256 hex digest, not a key")
        return {name: digest.lower() for name, digest in value.items()}


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> tuple[str, str]:
    key = secrets.token_urlsafe(32)
    return key, digest(key)


class ApiKeyAuthenticator:
    required = True
    scheme = "ApiKey"

    def __init__(self, settings: AuthSettings) -> None:
        self.header = settings.api_key_header
        self.keys = [(name, bytes.fromhex(value)) for name, value in settings.api_keys.items()]

    def credentials(self, headers: Headers) -> str | None:
        return headers.get(self.header) or None

    # --8<-- [start:verify]
    async def authenticate(self, credentials: str) -> Principal:
        presented = hashlib.sha256(credentials.encode()).digest()
        matched: str | None = None
        for name, expected in self.keys:
            # No early exit: every configured digest is compared.
            if hmac.compare_digest(presented, expected):
                matched = name
        if matched is None:
            raise AuthenticationError("invalid_api_key")
        return Principal(subject=matched)
        # --8<-- [end:verify]


def build_authenticator(settings: AuthSettings) -> ApiKeyAuthenticator:
    return ApiKeyAuthenticator(settings)
