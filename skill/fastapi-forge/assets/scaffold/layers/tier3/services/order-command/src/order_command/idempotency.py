"""`Idempotency-Key` (draft-ietf-httpapi-idempotency-key-header): a retried command gets the
first answer again instead of being applied twice.

The key is claimed inside the command's transaction, with the answer the command will give:
the order and its key commit together or not at all. A concurrent request with the same key
waits on the key's primary key until the first transaction ends, then replays what it
committed (or, if it rolled back, claims the key itself): duplicates never race past each
other, and none is answered "in progress"."""

import hashlib
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from .models import IdempotencyKey

REPLAYED_HEADER = "Idempotent-Replayed"


def fingerprint(operation: str, body: BaseModel) -> str:
    """Of the validated body: a retry that only reformats its JSON is still the same request."""
    return hashlib.sha256(f"{operation}\n{body.model_dump_json()}".encode()).hexdigest()


async def claim(
    session: AsyncSession,
    principal: str,
    key: str,
    request_fingerprint: str,
    status_code: int,
    response: dict[str, Any],
) -> IdempotencyKey | None:
    """None: the key is this request's (go on with the command). Otherwise the earlier
    request's record, to replay, or to refuse if its fingerprint differs."""
    while True:
        claimed = await session.scalar(
            insert(IdempotencyKey)
            .values(
                principal=principal,
                key=key,
                fingerprint=request_fingerprint,
                status_code=status_code,
                response=response,
                created_at=datetime.now(UTC),
            )
            .on_conflict_do_nothing(index_elements=["principal", "key"])
            .returning(IdempotencyKey.key)
        )
        if claimed is not None:
            return None
        # READ COMMITTED: this statement sees the row the conflicting transaction committed.
        earlier = await session.scalar(
            select(IdempotencyKey)
            .where(IdempotencyKey.principal == principal, IdempotencyKey.key == key)
            .execution_options(populate_existing=True)
        )
        if earlier is not None:
            return earlier
        # Deleted by the retention sweep between the two statements: the key is free again.
