"""Prometheus metrics, correct under several uvicorn workers and the job worker.

With several processes, set PROMETHEUS_MULTIPROC_DIR (an empty folder, wiped before the
processes start) in the environment of the API and the worker: each process writes its
samples there and `/metrics` aggregates them, whichever worker answers the scrape.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

if TYPE_CHECKING:
    from .agents.base import Usage

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests by route template and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency, to the end of the body",
    ["method", "route"],
)
AGENT_RUNS = Counter(
    "agent_runs_total",
    "Agent runs by entry point and outcome",
    ["mode", "outcome"],
)
RATE_LIMIT_UNCHECKED = Counter(
    "rate_limit_unchecked_total",
    "Requests let through unchecked because the rate limiter's Redis did not answer",
)
AGENT_TOKENS = Counter(
    "agent_tokens_total", "Tokens used by agent runs, per model and kind", ["model", "kind"]
)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


# --8<-- [start:record-usage]
def record_usage(usage: Iterable[Usage]) -> None:
    for item in usage:
        for kind, count in (
            ("input", item.input_tokens),
            ("output", item.output_tokens),
            ("cache_read", item.cache_read_tokens),
            ("cache_write", item.cache_write_tokens),
        ):
            if count:
                AGENT_TOKENS.labels(model=item.model, kind=kind).inc(count)
                # --8<-- [end:record-usage]


# --8<-- [start:multiprocess]
def render_latest() -> tuple[bytes, str]:
    if multiprocess_dir() is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def mark_process_dead() -> None:
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(os.getpid())
        # --8<-- [end:multiprocess]
