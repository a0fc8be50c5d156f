"""JWTs for the apps under test, minted with the standard library: the code under test, and
the JWT library it uses, are not trusted to test themselves."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_HMAC = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_claims(
    subject: str | None,
    *,
    audience: str,
    issuer: str | None = None,
    lifetime: float = 600,
    **extra: Any,
) -> dict[str, Any]:
    """`sub` (left out when None), `iat`, `exp` (`lifetime` seconds on; negative: already
    expired), `aud`, `iss` when given, then `extra`, which may replace any of them."""
    now = int(time.time())
    claims: dict[str, Any] = {"iat": now, "exp": now + int(lifetime), "aud": audience}
    if subject is not None:
        claims["sub"] = subject
    if issuer is not None:
        claims["iss"] = issuer
    return claims | extra


def mint_jwt(claims: Mapping[str, Any], secret: str = "", alg: str = "HS256") -> str:
    """A compact JWS of `claims` signed with HMAC (`alg` HS256, HS384 or HS512), or the
    unsigned form an attacker sends with `alg="none"`."""
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64url(json.dumps(dict(claims)).encode())
    if alg == "none":
        return f"{header}.{body}."
    digest = hmac.new(secret.encode(), f"{header}.{body}".encode(), _HMAC[alg]).digest()
    return f"{header}.{body}.{b64url(digest)}"


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of `token`."""
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class JwtMinter:
    """The tokens one app under test accepts (its secret, audience and issuer); each call
    may break one thing on purpose: another secret or algorithm, any claim replaced."""

    secret: str
    audience: str
    issuer: str | None = None
    lifetime: float = 600

    def token(
        self,
        subject: str | None,
        *,
        secret: str | None = None,
        alg: str = "HS256",
        lifetime: float | None = None,
        **claims: Any,
    ) -> str:
        payload = jwt_claims(
            subject,
            audience=self.audience,
            issuer=self.issuer,
            lifetime=self.lifetime if lifetime is None else lifetime,
            **claims,
        )
        return mint_jwt(payload, self.secret if secret is None else secret, alg)

    def bearer(self, subject: str | None, **options: Any) -> dict[str, str]:
        return bearer(self.token(subject, **options))

    def fresh_caller(self, **options: Any) -> dict[str, str]:
        """The Authorization header of a caller never seen before (its own rate-limit
        budget)."""
        return self.bearer(f"caller-{uuid.uuid4().hex[:12]}", **options)
