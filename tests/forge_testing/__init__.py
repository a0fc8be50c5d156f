"""The tests' support code, one module per concern. Every suite imports it; the names
most suites use are re-exported here, the rest come from their module.

- paths: the repository, the skill's assets, the shared download caches;
- commands: `run` a command to completion (CommandFailed), `clean_env` without the test venv;
- processes: servers in their own sessions with their logs kept, free ports, polling;
- databases: throwaway PostgreSQL databases, Redis logical databases, RabbitMQ vhosts;
- scaffolding: the scaffold script with the manifest's options, the Tier 1 COMBOS;
- venvs: every virtualenv by uv, with the one download cache;
- tokens: JWTs minted with the standard library, bearer headers;
- jobs: waiting on an agent job through the job API;
- metrics: Prometheus text read with prometheus_client's parser.
"""

from __future__ import annotations

from .commands import CommandFailed, clean_env, run
from .databases import (
    SERVICES_HINT,
    create_database,
    drop_database,
    ensure_rabbitmq,
    rabbitmq_vhost,
    redis_database,
    require_env,
    throwaway_database,
)
from .paths import (
    CACHE,
    PIP_CACHE_DIR,
    REPO_ROOT,
    SKILL,
    TEMPLATES,
    UV_CACHE_DIR,
)
from .processes import (
    LIVE_PROCESSES,
    ManagedProcess,
    Server,
    StartupError,
    free_port,
    spawn,
    start_redis_server,
    start_uvicorn,
    wait_for,
    wait_for_async,
    wait_until,
)

__all__ = [
    "CACHE",
    "LIVE_PROCESSES",
    "PIP_CACHE_DIR",
    "REPO_ROOT",
    "SERVICES_HINT",
    "SKILL",
    "TEMPLATES",
    "UV_CACHE_DIR",
    "CommandFailed",
    "ManagedProcess",
    "Server",
    "StartupError",
    "clean_env",
    "create_database",
    "drop_database",
    "ensure_rabbitmq",
    "free_port",
    "rabbitmq_vhost",
    "redis_database",
    "require_env",
    "run",
    "spawn",
    "start_redis_server",
    "start_uvicorn",
    "throwaway_database",
    "wait_for",
    "wait_for_async",
    "wait_until",
]
