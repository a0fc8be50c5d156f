"""user-service's signing keys: the only private key of the system (JWT_PRIVATE_KEY_FILE).
Its public half, and the previous key's during a rotation (JWT_PREVIOUS_PUBLIC_KEY_FILE),
are published at /.well-known/jwks.json for the gateway and the services.

    python -m user_service.keys create secrets/jwt-private.pem   # a new key (mode 0600)
    python -m user_service.keys ensure        # JWT_PRIVATE_KEY_FILE's key, made if missing
    python -m user_service.keys public secrets/jwt-private.pem   # its public PEM
    python -m user_service.keys client order-query order-command  # client secret + hash

Rotation: publish the old key's public PEM as JWT_PREVIOUS_PUBLIC_KEY_FILE, switch
JWT_PRIVATE_KEY_FILE to a new key, drop the previous one once its tokens have expired.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from forge_app_platform.auth import SERVICE_USE
from forge_app_platform.keys import new_private_key_pem, public_jwk

from .config import Settings

CREATE = "python -m user_service.keys create secrets/jwt-private.pem"


class KeyFileError(RuntimeError):
    pass


def _read(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyFileError(
            f"{setting}={path}: cannot read it ({exc.strerror}); create a key with `{CREATE}`"
        ) from None


class SigningKeys:
    """Signs tokens with the current key; verifies with the published ones."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        path = settings.jwt_private_key_file
        try:
            private = serialization.load_pem_private_key(
                _read(path, "JWT_PRIVATE_KEY_FILE"), password=None
            )
        except ValueError:
            raise KeyFileError(f"JWT_PRIVATE_KEY_FILE={path}: not a PEM private key") from None
        if not isinstance(private, rsa.RSAPrivateKey):
            raise KeyFileError(f"JWT_PRIVATE_KEY_FILE={path}: an RSA key is required (RS256)")
        self.private_key = private
        published = [public_jwk(private.public_key())]
        previous = settings.jwt_previous_public_key_file
        if previous is not None:
            try:
                old = serialization.load_pem_public_key(
                    _read(previous, "JWT_PREVIOUS_PUBLIC_KEY_FILE")
                )
            except ValueError:
                raise KeyFileError(
                    f"JWT_PREVIOUS_PUBLIC_KEY_FILE={previous}: not a PEM public key"
                ) from None
            if not isinstance(old, rsa.RSAPublicKey):
                raise KeyFileError(f"JWT_PREVIOUS_PUBLIC_KEY_FILE={previous}: not an RSA key")
            published.append(public_jwk(old))
        self.kid = str(published[0]["kid"])
        self.jwks: dict[str, Any] = {"keys": published}
        self.by_kid = {str(k["kid"]): jwt.PyJWK(k, algorithm="RS256") for k in published}

    async def key_for(self, kid: str) -> jwt.PyJWK:
        try:
            return self.by_kid[kid]
        except KeyError:
            raise jwt.InvalidTokenError("unknown kid") from None

    def _sign(self, subject: str, audience: str, lifetime: timedelta, **extra: Any) -> str:
        now = datetime.now(UTC)
        claims = {
            "sub": subject,
            "aud": audience,
            "iss": self.settings.jwt_issuer,
            "iat": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
            **extra,
        }
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.kid})

    def user_token(self, user_id: str) -> tuple[str, int]:
        lifetime = timedelta(minutes=self.settings.jwt_access_token_minutes)
        token = self._sign(user_id, self.settings.jwt_audience, lifetime)
        return token, int(lifetime.total_seconds())

    def service_token(self, client_id: str, audience: str) -> tuple[str, int]:
        lifetime = timedelta(minutes=self.settings.service_token_minutes)
        token = self._sign(client_id, audience, lifetime, token_use=SERVICE_USE)
        return token, int(lifetime.total_seconds())


def secret_hash(secret: str) -> str:
    # Client secrets are 256-bit random strings, not passwords: one SHA-256 is enough.
    return hashlib.sha256(secret.encode()).hexdigest()


def main(argv: list[str]) -> int:
    match argv:
        case ["create", path]:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(new_private_key_pem())
            print(f"wrote {target}")
        case ["ensure"]:
            path = os.environ.get("JWT_PRIVATE_KEY_FILE", "")
            if not path:
                print("JWT_PRIVATE_KEY_FILE is not set: the key file to create", file=sys.stderr)
                return 2
            if Path(path).exists():
                print(f"kept {path}")
                return 0
            return main(["create", path])
        case ["public", path]:
            key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
            pem = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            sys.stdout.write(pem.decode())
        case ["client", client_id, *audiences] if audiences:
            secret = secrets.token_urlsafe(32)
            entry = {client_id: {"secret_sha256": secret_hash(secret), "audiences": audiences}}
            print(f"{client_id}'s SERVICE_CLIENT_SECRET={secret}")
            print(f"user-service's SERVICE_CLIENTS (merged): {json.dumps(entry)}")
        case _:
            print(__doc__, file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
