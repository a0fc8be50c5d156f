"""scrypt from the standard library (memory-hard; no extra dependency to keep current)."""

import asyncio
import hashlib
import hmac
import secrets

N, R, P, SALT_BYTES, KEY_BYTES = 2**14, 8, 1, 16, 32


def _derive(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=KEY_BYTES)


async def hash_password(password: str) -> bytes:
    salt = secrets.token_bytes(SALT_BYTES)
    # CPU-bound for tens of milliseconds: off the event loop.
    return salt + await asyncio.to_thread(_derive, password, salt)


async def verify_password(password: str, stored: bytes) -> bool:
    salt, expected = stored[:SALT_BYTES], stored[SALT_BYTES:]
    return hmac.compare_digest(await asyncio.to_thread(_derive, password, salt), expected)
