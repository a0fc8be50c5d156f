"""JWTs for the apps under test, minted with the standard library: the code under test, and
the JWT library it uses, are not trusted to test themselves. RS256 signatures too (RSA
PKCS#1 v1.5 is one modular exponentiation); only generating and reading RSA keys uses
`cryptography`."""

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
# DER prefix of a SHA-256 DigestInfo (RFC 8017, 9.2 note 1).
_SHA256_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


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


def _b64int(number: int) -> str:
    return b64url(number.to_bytes((number.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class RsaKey:
    """An RSA key pair; `kid` is its RFC 7638 thumbprint, computed here."""

    n: int
    e: int
    d: int
    pem: bytes  # the private key, PKCS#8 PEM (what JWT_PRIVATE_KEY_FILE holds)

    @classmethod
    def generate(cls, bits: int = 2048) -> RsaKey:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls.from_pem(pem)

    @classmethod
    def from_pem(cls, pem: bytes) -> RsaKey:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        numbers = key.private_numbers()
        public = numbers.public_numbers
        return cls(public.n, public.e, numbers.d, pem)

    def public_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        key = serialization.load_pem_private_key(self.pem, password=None)
        return key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def kid(self) -> str:
        members = {"e": _b64int(self.e), "kty": "RSA", "n": _b64int(self.n)}
        canonical = json.dumps(members, separators=(",", ":"), sort_keys=True)
        return b64url(hashlib.sha256(canonical.encode()).digest())

    def jwk(self) -> dict[str, str]:
        return {"kty": "RSA", "n": _b64int(self.n), "e": _b64int(self.e), "kid": self.kid,
                "alg": "RS256", "use": "sig"}  # fmt: skip

    def sign(self, data: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 with SHA-256 (RS256)."""
        size = (self.n.bit_length() + 7) // 8
        info = _SHA256_INFO + hashlib.sha256(data).digest()
        encoded = b"\x00\x01" + b"\xff" * (size - len(info) - 3) + b"\x00" + info
        return pow(int.from_bytes(encoded, "big"), self.d, self.n).to_bytes(size, "big")


def mint_jwt(
    claims: Mapping[str, Any],
    secret: str = "",
    alg: str = "HS256",
    *,
    key: RsaKey | None = None,
    kid: str | None = None,
) -> str:
    """A compact JWS of `claims` signed with HMAC (`alg` HS256, HS384 or HS512), with `key`
    (`alg` RS256; `kid` its thumbprint unless given), or the unsigned form an attacker
    sends with `alg="none"`."""
    head: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if key is not None or kid is not None:
        head["kid"] = kid if kid is not None else key.kid  # type: ignore[union-attr]
    header = b64url(json.dumps(head).encode())
    body = b64url(json.dumps(dict(claims)).encode())
    if alg == "none":
        return f"{header}.{body}."
    if alg == "RS256":
        assert key is not None, "RS256 needs a key"
        return f"{header}.{body}.{b64url(key.sign(f'{header}.{body}'.encode()))}"
    digest = hmac.new(secret.encode(), f"{header}.{body}".encode(), _HMAC[alg]).digest()
    return f"{header}.{body}.{b64url(digest)}"


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of `token`."""
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class JwtMinter:
    """The tokens one app under test accepts (its secret or RSA key, audience and issuer);
    each call may break one thing on purpose: another secret, key, kid or algorithm, any
    claim replaced."""

    secret: str
    audience: str
    issuer: str | None = None
    lifetime: float = 600
    key: RsaKey | None = None  # set: RS256 by default

    def token(
        self,
        subject: str | None,
        *,
        secret: str | None = None,
        alg: str | None = None,
        lifetime: float | None = None,
        key: RsaKey | None = None,
        kid: str | None = None,
        **claims: Any,
    ) -> str:
        payload = jwt_claims(
            subject,
            audience=self.audience,
            issuer=self.issuer,
            lifetime=self.lifetime if lifetime is None else lifetime,
            **claims,
        )
        rsa_key = key or self.key
        alg = alg or ("RS256" if rsa_key is not None else "HS256")
        return mint_jwt(
            payload,
            self.secret if secret is None else secret,
            alg,
            key=rsa_key if alg == "RS256" else None,
            kid=kid,
        )

    def bearer(self, subject: str | None, **options: Any) -> dict[str, str]:
        return bearer(self.token(subject, **options))

    def fresh_caller(self, **options: Any) -> dict[str, str]:
        """The Authorization header of a caller never seen before (its own rate-limit
        budget)."""
        return self.bearer(f"caller-{uuid.uuid4().hex[:12]}", **options)
