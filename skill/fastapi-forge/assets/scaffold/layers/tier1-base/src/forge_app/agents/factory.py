"""Choose the agent runner from settings: `fake` (default) or the project's SDK runner."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import AgentRunner
from .fake import FakeRunner

if TYPE_CHECKING:
    from ..config import Settings


def build_runner(settings: Settings) -> AgentRunner:
    if settings.agent_runner == "fake":
        return FakeRunner(
            model=settings.agent_model,
            delay_seconds=settings.fake_agent_delay_seconds,
            fail=settings.fake_agent_fail,
        )
    # Imported only when selected, so the SDK is never loaded in tests or local work.
    from .sdk import build_sdk_runner

    return build_sdk_runner(settings)
