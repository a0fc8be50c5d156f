"""What the agent routes do, independent of HTTP: run, stream, submit and cancel jobs."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

import anyio
import structlog
from fastapi import Depends

from ..agents.base import AgentChunk, AgentRequest, AgentRunError, run_to_completion
from ..dependencies import ResourcesDep
from ..errors import AppError
from ..metrics import AGENT_RUNS, record_usage
from ..models.schemas import JobStatus, RunRequest, RunResponse, UsageView
from .idempotency import IdempotencyKeys, fingerprint
from .jobs import JobRecord, utcnow

if TYPE_CHECKING:
    from ..principal import Principal
    from ..resources import Resources

log = structlog.get_logger(__name__)

# How long a run that was left (client gone, timeout) may take to close its model call.
CLEANUP_SECONDS = 10.0


class AgentService:
    # An AgentRunner itself (`stream`): the runner under the deadline, tokens counted.
    name = "agent-service"

    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self.settings = resources.settings

    def check_model(self, model: str | None) -> None:
        """None is AGENT_MODEL; any other model must be listed in AGENT_ALLOWED_MODELS."""
        allowed = {self.settings.agent_model, *self.settings.agent_allowed_models}
        if model is not None and model not in allowed:
            raise AppError(
                422,
                "model_not_allowed",
                f"model {model!r} is not allowed; omit `model` for the default",
            )

    async def run(self, body: RunRequest) -> RunResponse:
        self.check_model(body.model)
        request = AgentRequest(
            prompt=body.prompt, model=body.model, session_id=body.session_id, metadata=body.metadata
        )
        started = time.perf_counter()
        try:
            # Through `stream`, which counts tokens as they are reported: a run that then
            # fails or times out has still spent them.
            result = await run_to_completion(self, request)
        except TimeoutError:
            AGENT_RUNS.labels(mode="sync", outcome="timeout").inc()
            raise AppError(504, "agent_timeout", "the agent did not finish in time") from None
        except AgentRunError as exc:
            AGENT_RUNS.labels(mode="sync", outcome="failed").inc()
            raise AppError(502, "agent_error", str(exc)) from None
        AGENT_RUNS.labels(mode="sync", outcome="completed").inc()
        return RunResponse(
            output=result.text,
            model=body.model or self.settings.agent_model,
            usage=[UsageView.model_validate(u, from_attributes=True) for u in result.usage],
            tool_calls=result.tool_calls,
            duration_seconds=round(time.perf_counter() - started, 4),
        )

    # --8<-- [start:deadline]
    async def stream(self, request: AgentRequest) -> AsyncIterator[AgentChunk]:
        """The runner's chunks under the agent timeout (TimeoutError when it expires).

        The deadline covers the whole run but is applied to each wait for the next chunk,
        because a timeout scope must not stay open across `yield`. The runner runs in a
        task of its own: a client leaving an SSE stream cancels the route through an anyio
        cancel scope, which cancels every await under it again and again, so the runner's
        cleanup (closing the model stream, `await client.interrupt()`) would be cut short
        and the model run go on. Its task is cancelled once instead, then awaited
        shielded, for at most CLEANUP_SECONDS."""
        deadline = asyncio.get_running_loop().time() + self.settings.agent_timeout_seconds
        chunks: asyncio.Queue[AgentChunk | Exception | None] = asyncio.Queue(maxsize=1)
        run = asyncio.create_task(self._run(request, chunks))
        try:
            while True:
                async with asyncio.timeout_at(deadline):
                    chunk = await chunks.get()
                if chunk is None:
                    return
                if isinstance(chunk, Exception):
                    raise chunk
                if chunk.usage is not None:
                    record_usage([chunk.usage])
                yield chunk
        finally:
            run.cancel()
            with anyio.CancelScope(shield=True) as cleanup:
                cleanup.deadline = anyio.current_time() + CLEANUP_SECONDS
                await asyncio.wait([run])
            log.info("agent_run_closed", cleanup="completed" if run.done() else "abandoned")

    async def _run(
        self, request: AgentRequest, chunks: asyncio.Queue[AgentChunk | Exception | None]
    ) -> None:
        stream = self.resources.runner.stream(request)
        try:
            async for chunk in stream:
                await chunks.put(chunk)
            await chunks.put(None)
        except Exception as exc:  # raised again in the consumer
            await chunks.put(exc)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
                # --8<-- [end:deadline]

    async def pump(
        self, request: AgentRequest, emit: Callable[[AgentChunk], Awaitable[None]]
    ) -> None:
        """The runner's chunks handed to `emit` (which encodes and sends each) in the
        calling task, under the agent timeout (TimeoutError), up to the first `error` chunk.

        `stream` without its second task and queue, for the SSE and WebSocket routes: they
        run this in a task of their own, which they cancel once when the client leaves and
        then wait for at most CLEANUP_SECONDS, so the runner's cleanup is not cut short."""
        stream = self.resources.runner.stream(request)
        try:
            async with asyncio.timeout(self.settings.agent_timeout_seconds):
                async for chunk in stream:
                    if chunk.usage is not None:
                        record_usage([chunk.usage])
                    await emit(chunk)
                    if chunk.type == "error":
                        return
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    async def submit(
        self, principal: Principal, body: RunRequest, idempotency_key: str | None = None
    ) -> tuple[JobRecord, bool]:
        """The job, and whether it is an earlier submit's (same Idempotency-Key and body)."""
        self.check_model(body.model)
        if idempotency_key is None:
            return await self.enqueue(principal, body), False
        keys = IdempotencyKeys(
            self.resources.redis,
            prefix=self.settings.redis_key_prefix,
            ttl_seconds=self.settings.idempotency_key_ttl_seconds,
        )
        request_fingerprint = fingerprint(body)
        owner = principal.subject
        earlier = await keys.claim(owner, idempotency_key, request_fingerprint)
        if earlier is not None:
            return await self.get_job(principal, uuid.UUID(earlier)), True
        try:
            job = await self.enqueue(principal, body)
        except BaseException:
            # Nothing runs for this key: a retry with it may submit again.
            await keys.release(owner, idempotency_key)
            raise
        await keys.bind(owner, idempotency_key, request_fingerprint, str(job.job_id))
        return job, False

    async def enqueue(self, principal: Principal, body: RunRequest) -> JobRecord:
        store = self.resources.jobs
        job = await store.create(owner=principal.subject, prompt=body.prompt, model=body.model)
        job_id = str(job.job_id)
        try:
            await self.resources.queue.enqueue(job_id)
        except Exception as exc:
            # No worker will ever see this job: it must not stay `queued` for ever.
            log.error("job_enqueue_failed", job_id=job_id, error=type(exc).__name__)
            with contextlib.suppress(Exception):
                await store.update(
                    job_id,
                    when={JobStatus.QUEUED},
                    status=JobStatus.FAILED,
                    error="not queued: the job queue was unavailable",
                    finished_at=utcnow(),
                )
            raise AppError(
                503,
                "queue_unavailable",
                "the job queue is unavailable; retry later",
                headers={"Retry-After": "5"},
                details=[{"job_id": job_id, "status": JobStatus.FAILED.value}],
            ) from exc
        log.info("job_submitted", job_id=job_id)
        return job

    async def get_job(self, principal: Principal, job_id: uuid.UUID) -> JobRecord:
        job = await self.resources.jobs.get(str(job_id))
        # Someone else's job is reported as missing, not forbidden: ids are not disclosed.
        if job is None or job.owner != principal.subject:
            raise AppError(404, "job_not_found", "no such job")
        return job

    async def cancel_job(self, principal: Principal, job_id: uuid.UUID) -> JobRecord:
        job = await self.get_job(principal, job_id)
        if job.status.terminal:
            raise AppError(409, "job_finished", f"the job is already {job.status.value}")
        key = str(job_id)
        store, queue = self.resources.jobs, self.resources.queue
        dropped = await store.update(
            key,
            when={JobStatus.QUEUED},
            status=JobStatus.CANCELLED,
            cancel_requested=True,
            finished_at=utcnow(),
        )
        if dropped is not None:
            await queue.cancel(key, wait_seconds=0)
            AGENT_RUNS.labels(mode="job", outcome="cancelled").inc()
            return dropped
        running = await store.update(key, when={JobStatus.RUNNING}, cancel_requested=True)
        if running is None:
            # It finished between the read above and now.
            raise AppError(409, "job_finished", "the job has already finished")
        await queue.cancel(key, wait_seconds=self.settings.cancel_wait_seconds)
        return await self.get_job(principal, job_id)


async def stop_run(run: asyncio.Task[None]) -> None:
    """Cancels a run's task once (its client left) and waits at most CLEANUP_SECONDS for
    the runner's cleanup: closing the model stream, `await client.interrupt()`."""
    if not run.done():
        run.cancel()
    try:
        await asyncio.wait([run], timeout=CLEANUP_SECONDS)
    finally:
        log.info("agent_run_closed", cleanup="completed" if run.done() else "abandoned")


async def get_agent_service(resources: ResourcesDep) -> AgentService:
    return AgentService(resources)


AgentServiceDep = Annotated[AgentService, Depends(get_agent_service)]
