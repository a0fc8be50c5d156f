import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import HTTPException

from forge_app_platform.auth import SERVICE_USE, JwksKeys, TokenVerifier
from forge_app_platform.keys import new_private_key_pem, public_jwk
from forge_app_platform.settings import ServiceSettings, VerifyingSettings

SETTINGS = ServiceSettings(service_name="order-command")
PRIVATE = serialization.load_pem_private_key(new_private_key_pem(), password=None)
JWK = public_jwk(PRIVATE.public_key())  # type: ignore[union-attr]


class OneKey:
    async def key_for(self, kid: str) -> Any:
        if kid != JWK["kid"]:
            raise jwt.InvalidTokenError("unknown kid")
        return jwt.PyJWK(JWK, algorithm="RS256")


def sign(private: Any = PRIVATE, kid: str = JWK["kid"], **claims: Any) -> str:
    now = int(time.time())
    body = {"sub": "u-1", "aud": "forge-api", "iss": "forge-api", "iat": now, "exp": now + 60}
    return jwt.encode(body | claims, private, "RS256", headers={"kid": kid})


async def verify(token: str, *, service: bool = False) -> str:
    return (await TokenVerifier(SETTINGS, OneKey()).verify(token, service=service)).subject


async def refused(token: str, *, service: bool = False) -> None:
    with pytest.raises(HTTPException) as caught:
        await verify(token, service=service)
    assert caught.value.status_code == 401


async def test_a_token_of_the_published_key_verifies() -> None:
    assert await verify(sign()) == "u-1"


async def test_another_key_or_audience_is_refused() -> None:
    other = serialization.load_pem_private_key(new_private_key_pem(), password=None)
    await refused(sign(other))  # same kid, another key
    await refused(sign(aud="other"))
    await refused(sign(iss="someone-else"))


async def test_hs256_keyed_with_the_public_key_is_refused() -> None:
    # The alg-confusion attack: the public key (which anyone can fetch) as an HMAC secret.
    pem = PRIVATE.public_key().public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": JWK["kid"]}).encode())
    claims = {"sub": "u-1", "aud": "forge-api", "iss": "forge-api", "iat": now, "exp": now + 60}
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    await refused(f"{header}.{body}.{b64(mac)}")


async def test_user_and_service_tokens_never_pass_for_each_other() -> None:
    service = sign(sub="order-query", aud="order-command", token_use=SERVICE_USE)
    assert await verify(service, service=True) == "order-query"
    await refused(service)  # not a user
    await refused(sign(), service=True)  # a user's token, audience forge-api
    # A user-style token addressed to the service, without the service mark: refused too.
    await refused(sign(sub="order-query", aud="order-command"), service=True)


async def test_a_flood_of_unknown_kids_fetches_the_jwks_a_bounded_number_of_times() -> None:
    fetches = 0

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            nonlocal fetches
            fetches += 1
            body = json.dumps({"keys": [JWK]}).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/jwks"
        settings = VerifyingSettings(service_name="order-command", jwks_url=url)
        verifier = TokenVerifier(settings, JwksKeys(settings))
        assert (await verifier.verify(sign())).subject == "u-1"
        flood = [verifier.verify(sign(kid=uuid.uuid4().hex)) for _ in range(200)]
        results = await asyncio.gather(*flood, return_exceptions=True)
        assert all(isinstance(r, HTTPException) and r.status_code == 401 for r in results)
        assert (await verifier.verify(sign())).subject == "u-1"
        # The first fetch, then none: a refetch waits JWKS_REFETCH_SECONDS (30 s).
        assert fetches == 1
    finally:
        server.shutdown()
