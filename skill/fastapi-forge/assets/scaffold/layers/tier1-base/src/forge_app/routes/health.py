"""Liveness, readiness and metrics: public, exempt from rate limiting."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from fastapi import APIRouter, Response

from ..dependencies import ResourcesDep
from ..metrics import render_latest
from ..models.schemas import HealthResponse, ReadinessResponse

router = APIRouter(tags=["health"])
log = structlog.get_logger(__name__)


@router.get("/health")
async def health() -> HealthResponse:
    """Liveness: the process answers. Checks nothing else, so a database outage does not
    make the orchestrator restart every replica."""
    return HealthResponse()


async def check(name: str, probe: Callable[[], Awaitable[object]], limit_seconds: float) -> bool:
    try:
        async with asyncio.timeout(limit_seconds):
            await probe()
    except Exception as exc:
        log.warning("readiness_check_failed", check=name, error=type(exc).__name__)
        return False
    return True


@router.get(
    "/health/ready",
    responses={503: {"model": ReadinessResponse, "description": "a dependency is down"}},
)
async def ready(resources: ResourcesDep, response: Response) -> ReadinessResponse:
    """Readiness: Redis and the database answer within READINESS_TIMEOUT_SECONDS."""
    probes: dict[str, Callable[[], Awaitable[object]]] = {"redis": resources.redis.ping}
    if resources.database is not None:
        probes["database"] = resources.database.ping
    timeout = resources.settings.readiness_timeout_seconds
    results = await asyncio.gather(*(check(n, p, timeout) for n, p in probes.items()))
    checks = {name: "ok" if ok else "failed" for name, ok in zip(probes, results, strict=True)}
    all_ok = all(results)
    if not all_ok:
        response.status_code = 503
    return ReadinessResponse(status="ready" if all_ok else "not_ready", checks=checks)


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    body, content_type = render_latest()
    return Response(content=body, media_type=content_type)
