"""Where a larger system plugs into this service.

A system that runs this project as one of its services (fastapi-forge's Tier 2 does, for
its event bus) adds a module `forge_app/integration.py` defining `HOOKS`. A standalone
project has no such module: every hook is then empty and nothing here runs.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .resources import Resources
    from .services.jobs import JobRecord

# (open transaction, the job as just changed); what it writes commits or rolls back with
# the change. Called by stores that have transactions (PostgreSQL).
JobChanged = Callable[[Any, "JobRecord"], Awaitable[None]]
# Entered by the API process once its resources are open, left before they close.
ApiLifespan = Callable[["Resources"], AbstractAsyncContextManager[None]]


@dataclass(frozen=True, slots=True)
class Hooks:
    job_changed: Sequence[JobChanged] = ()
    api_lifespan: Sequence[ApiLifespan] = ()
    # SQLAlchemy MetaData of the tables the integration's migrations create (Alembic's
    # env.py adds them to the models', so `alembic check` expects them).
    metadata: Sequence[Any] = ()


@cache
def load_hooks() -> Hooks:
    name = f"{__package__}.integration"
    if importlib.util.find_spec(name) is None:
        return Hooks()
    hooks: Hooks = importlib.import_module(name).HOOKS
    return hooks
