"""No authentication (`--auth none`): for internal services behind a gateway or a
private network that already authenticates callers. Every caller is `anonymous`."""

from __future__ import annotations

from pydantic_settings import BaseSettings
from starlette.datastructures import Headers

from .principal import ANONYMOUS, Principal


class AuthSettings(BaseSettings):
    pass


class NoAuthenticator:
    required = False
    scheme = "None"

    def credentials(self, headers: Headers) -> str | None:
        return None

    async def authenticate(self, credentials: str) -> Principal:
        return ANONYMOUS


def build_authenticator(settings: AuthSettings) -> NoAuthenticator:
    return NoAuthenticator()
