"""Prometheus metrics, correct under several uvicorn workers and the job worker.

With several processes, set PROMETHEUS_MULTIPROC_DIR (an empty folder, wiped before the
processes start) in the environment of the API and the worker: each process writes its
samples there and `/metrics` aggregates them, whichever worker answers the scrape.

The two per-request metrics are summed in plain dicts first (`HTTP_TOTALS`):
prometheus_client takes a lock for every `labels()`, `inc()` and `observe()`, several per
request. The sums reach the metrics on the event loop's next turn, in one update per label
set for all the requests that ended in the same turn.
"""

from __future__ import annotations

import asyncio
import os
from bisect import bisect_left
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


class HttpTotals:
    """Per-process sums of HTTP_REQUESTS and HTTP_LATENCY, added to without a lock."""

    def __init__(self) -> None:
        self.bounds = tuple(HTTP_LATENCY._upper_bounds)
        self.requests: dict[tuple[str, str, str], int] = {}
        # (method, route) -> per-bucket counts (not cumulative, as prometheus_client keeps
        # them), then the sum of the durations.
        self.latency: dict[tuple[str, str], list[float]] = {}
        self.flush_loop: asyncio.AbstractEventLoop | None = None

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, str(status))
        self.requests[key] = self.requests.get(key, 0) + 1
        counts = self.latency.get((method, route))
        if counts is None:
            counts = self.latency[(method, route)] = [0] * (len(self.bounds) + 1)
        counts[bisect_left(self.bounds, seconds)] += 1
        counts[-1] += seconds
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self.flush_loop is not loop:
            self.flush_loop = loop
            loop.call_soon(self.on_next_turn)

    def on_next_turn(self) -> None:
        self.flush_loop = None
        self.flush()

    def flush(self) -> None:
        requests, self.requests = self.requests, {}
        latency, self.latency = self.latency, {}
        for (method, route, status), n in requests.items():
            HTTP_REQUESTS.labels(method=method, route=route, status=status).inc(n)
        for (method, route), counts in latency.items():
            child = HTTP_LATENCY.labels(method=method, route=route)
            # The histogram's own values (in memory, or the multiprocess files): observe()
            # adds one observation at a time, these are many at once.
            for bucket, n in zip(child._buckets, counts, strict=False):
                if n:
                    bucket.inc(n)
            child._sum.inc(counts[-1])


HTTP_TOTALS = HttpTotals()


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
    HTTP_TOTALS.flush()
    if multiprocess_dir() is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def mark_process_dead() -> None:
    HTTP_TOTALS.flush()
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(os.getpid())
        # --8<-- [end:multiprocess]
