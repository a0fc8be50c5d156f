"""Who is calling: the contract between the auth middleware and the chosen auth scheme."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from starlette.datastructures import Headers


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    scopes: frozenset[str] = field(default_factory=frozenset)


ANONYMOUS = Principal(subject="anonymous")


class AuthenticationError(Exception):
    """Credentials were present but not acceptable. `code` is safe to show to the caller."""

    def __init__(self, code: str = "invalid_credentials") -> None:
        super().__init__(code)
        self.code = code


class Authenticator(Protocol):
    # False for `--auth none`: every caller is ANONYMOUS.
    required: bool
    # Sent in `WWW-Authenticate` on 401 answers.
    scheme: str

    def credentials(self, headers: Headers) -> str | None:
        """The raw token or key from the request headers, or None when absent."""
        ...

    async def authenticate(self, credentials: str) -> Principal:
        """Verify the credentials; raise AuthenticationError when they are not valid."""
        ...
