"""Agent jobs: the durable record, the store and queue interfaces, and the one function
every queue runs (`execute_job`), so ARQ, Celery and in-process jobs share a state machine:

    queued -> running -> completed | failed | cancelled
    queued -> cancelled          (cancelled before a worker picked it up)
    running -> failed            (its lease expired: the worker died; never re-run)

Every transition is a conditional update ("only if the status is still X"), so a worker
finishing and a client cancelling at the same moment cannot both win.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Collection
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from ..agents.base import (
    AgentChunk,
    AgentRequest,
    AgentRunError,
    AgentRunner,
    Usage,
    run_to_completion,
)
from ..metrics import AGENT_RUNS, record_usage
from ..models.schemas import JobStatus, JobView, UsageView

if TYPE_CHECKING:
    from ..config import Settings

log = structlog.get_logger(__name__)

# Progress is written at most this often; a chatty agent must not flood the store.
PROGRESS_WRITE_SECONDS = 0.5
INTERRUPTED = "interrupted: the worker stopped"


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobRecord(JobView):
    """The stored job: the public view plus what only the server needs."""

    owner: str
    prompt: str
    model: str | None = None
    # The lease: renewed while a worker runs the job (`heartbeat`).
    heartbeat_at: datetime | None = None

    def view(self) -> JobView:
        return JobView.model_validate(self.model_dump(include=set(JobView.model_fields)))


class JobStore(Protocol):
    async def create(self, *, owner: str, prompt: str, model: str | None) -> JobRecord: ...

    async def get(self, job_id: str) -> JobRecord | None: ...

    async def update(
        self, job_id: str, *, when: Collection[JobStatus], **changes: Any
    ) -> JobRecord | None:
        """Apply `changes` only if the job's status is in `when`; None when it is not
        (or the job does not exist). Keys: status, progress, result, error, usage,
        cancel_requested, started_at, finished_at, heartbeat_at."""
        ...

    async def fail_stale(self, *, leased_before: datetime, error: str) -> int:
        """Fail the running jobs whose lease is older than `leased_before`; their count."""
        ...


class JobQueue(Protocol):
    async def enqueue(self, job_id: str) -> None: ...

    async def cancel(self, job_id: str, *, wait_seconds: float) -> None:
        """Interrupt the job if it is running (or drop it if still queued) and wait up to
        `wait_seconds` for the worker to record the cancellation."""
        ...

    async def close(self) -> None: ...


def merge_usage(usage: Collection[Usage]) -> list[dict[str, Any]]:
    """One entry per model: a run that used two models reports both."""
    by_model: dict[str, UsageView] = {}
    for item in usage:
        current = by_model.setdefault(item.model, UsageView(model=item.model))
        current.input_tokens += item.input_tokens
        current.output_tokens += item.output_tokens
        current.cache_read_tokens += item.cache_read_tokens
        current.cache_write_tokens += item.cache_write_tokens
        if item.cost_usd is not None:
            current.cost_usd = (current.cost_usd or 0.0) + item.cost_usd
    return [view.model_dump() for view in by_model.values()]


class ProgressTap:
    """Wraps a runner to see each chunk on its way to `run_to_completion`: it tracks usage
    (kept even if the run is cancelled) and writes an estimated progress."""

    def __init__(self, runner: AgentRunner, store: JobStore, job_id: str) -> None:
        self.name = runner.name
        self.runner = runner
        self.store = store
        self.job_id = job_id
        self.usage: list[Usage] = []
        self.chunks = 0
        self.last_write = time.monotonic()

    async def stream(self, request: AgentRequest) -> AsyncIterator[AgentChunk]:
        async for chunk in self.runner.stream(request):
            self.chunks += 1
            if chunk.usage is not None:
                self.usage.append(chunk.usage)
            now = time.monotonic()
            if now - self.last_write >= PROGRESS_WRITE_SECONDS:
                self.last_write = now
                # Agents do not announce their length: approach 1 without reaching it.
                progress = round(min(0.99, self.chunks / (self.chunks + 20)), 3)
                await self.store.update(self.job_id, when={JobStatus.RUNNING}, progress=progress)
            yield chunk


# --8<-- [start:execute]
async def execute_job(
    job_id: str, *, store: JobStore, runner: AgentRunner, settings: Settings
) -> JobStatus | None:
    """Run one job to a terminal state. Returns that state, or None if the job was not
    startable (cancelled while queued, or unknown)."""
    bound = log.bind(job_id=job_id)
    now = utcnow()
    job = await store.update(
        job_id, when={JobStatus.QUEUED}, status=JobStatus.RUNNING, started_at=now, heartbeat_at=now
    )
    if job is None:
        bound.info("job_not_started")
        return None
    # The lease: while it is renewed, no reaper takes this job for one of a dead worker.
    lease = asyncio.create_task(heartbeat(store, job_id, settings))
    try:
        return await run_job(job, store=store, runner=runner, settings=settings)
    finally:
        lease.cancel()
    # --8<-- [end:execute]


async def heartbeat(store: JobStore, job_id: str, settings: Settings) -> None:
    while True:
        await asyncio.sleep(settings.job_heartbeat_seconds)
        with contextlib.suppress(Exception):  # a store hiccup: the next beat retries
            if await store.update(job_id, when={JobStatus.RUNNING}, heartbeat_at=utcnow()) is None:
                return  # finished, or failed by a reaper after a stall


async def run_job(
    job: JobRecord, *, store: JobStore, runner: AgentRunner, settings: Settings
) -> JobStatus | None:
    job_id = str(job.job_id)
    bound = log.bind(job_id=job_id)
    tap = ProgressTap(runner, store, job_id)
    request = AgentRequest(prompt=job.prompt, model=job.model, metadata={"job_id": job_id})
    changes: dict[str, Any]
    try:
        async with asyncio.timeout(settings.agent_timeout_seconds):
            result = await run_to_completion(tap, request)
    except TimeoutError:
        changes = {
            "status": JobStatus.FAILED,
            "error": f"agent timed out after {settings.agent_timeout_seconds:g} seconds",
        }
        outcome = "timeout"
    except AgentRunError as exc:
        changes = {"status": JobStatus.FAILED, "error": str(exc)[:500]}
        outcome = "failed"
    except asyncio.CancelledError:
        # Shielded: the canceller may cancel again while this runs (ARQ repeats an abort
        # until the task ends), and the outcome must still be recorded.
        await asyncio.shield(record_stop(store, job_id, tap))
        raise
    except Exception:
        bound.exception("job_crashed")
        changes = {"status": JobStatus.FAILED, "error": "the agent failed; see the server logs"}
        outcome = "failed"
    else:
        changes = {"status": JobStatus.COMPLETED, "result": result.text, "progress": 1.0}
        outcome = "completed"
    return await finish(store, job_id, tap, changes, outcome)


async def reap_stale_jobs(store: JobStore, settings: Settings) -> None:
    """Fails running jobs whose worker died (lease expired), every JOB_HEARTBEAT_SECONDS.
    Every API process runs it; the conditional update makes concurrent reapers harmless."""
    while True:
        leased_before = utcnow() - timedelta(seconds=settings.job_lease_seconds)
        try:
            if count := await store.fail_stale(leased_before=leased_before, error=INTERRUPTED):
                AGENT_RUNS.labels(mode="job", outcome="interrupted").inc(count)
                log.warning("jobs_reaped", count=count)
        except Exception:
            log.warning("job_reaper_failed", exc_info=True)
        await asyncio.sleep(settings.job_heartbeat_seconds)


async def record_stop(store: JobStore, job_id: str, tap: ProgressTap) -> None:
    # A client's cancel sets cancel_requested first; anything else that cancels the task
    # (a worker shutting down) is an interruption, reported as a failure.
    current = await store.get(job_id)
    if current is not None and current.cancel_requested:
        await finish(store, job_id, tap, {"status": JobStatus.CANCELLED}, "cancelled")
    else:
        interrupted = {"status": JobStatus.FAILED, "error": INTERRUPTED}
        await finish(store, job_id, tap, interrupted, "interrupted")


async def finish(
    store: JobStore, job_id: str, tap: ProgressTap, changes: dict[str, Any], outcome: str
) -> JobStatus | None:
    record_usage(tap.usage)
    AGENT_RUNS.labels(mode="job", outcome=outcome).inc()
    final = await store.update(
        job_id,
        when={JobStatus.RUNNING},
        usage=merge_usage(tap.usage),
        finished_at=utcnow(),
        **changes,
    )
    log.info("job_finished", job_id=job_id, outcome=outcome, usage=[asdict(u) for u in tap.usage])
    return final.status if final is not None else None
