"""Request and response models of the public API."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

MAX_PROMPT_CHARS = 50_000
Prompt = Annotated[str, Field(min_length=1, max_length=MAX_PROMPT_CHARS)]
ModelName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[\w.:/@-]+$")]


class ErrorBody(BaseModel):
    code: str
    message: str
    request_id: str | None = None
    details: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadinessResponse(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, Literal["ok", "failed"]]


# --8<-- [start:run-request]
class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: Prompt
    # None: the server's configured AGENT_MODEL.
    model: ModelName | None = None
    session_id: Annotated[str, Field(max_length=200)] | None = None
    metadata: Annotated[dict[str, Annotated[str, Field(max_length=500)]], Field(max_length=20)] = (
        Field(default_factory=dict)
    )
    # --8<-- [end:run-request]


class UsageView(BaseModel):
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float | None = None


class RunResponse(BaseModel):
    output: str
    model: str
    usage: list[UsageView]
    tool_calls: list[dict[str, Any]]
    duration_seconds: float


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}


class JobView(BaseModel):
    job_id: uuid.UUID
    status: JobStatus
    # An estimate between 0 and 1; exactly 1.0 only once completed.
    progress: float = Field(ge=0.0, le=1.0)
    result: str | None = None
    error: str | None = None
    usage: list[UsageView] = Field(default_factory=list)
    cancel_requested: bool = False
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class StreamEvent(BaseModel):
    """One agent chunk as sent over SSE (`data:`) and WebSocket."""

    type: Literal["text", "tool_call", "tool_result", "usage", "error", "done"]
    text: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
    usage: UsageView | None = None


# --- WebSocket protocol (client -> server) -------------------------------------------------


class WsRun(BaseModel):
    type: Literal["run"]
    prompt: Prompt
    model: ModelName | None = None
    session_id: Annotated[str, Field(max_length=200)] | None = None


class WsCancel(BaseModel):
    type: Literal["cancel"]


class WsPing(BaseModel):
    type: Literal["ping"]


WsClientMessage = Annotated[WsRun | WsCancel | WsPing, Field(discriminator="type")]
ws_client_message: TypeAdapter[WsRun | WsCancel | WsPing] = TypeAdapter(WsClientMessage)
