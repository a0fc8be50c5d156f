"""The SDK runner of this project. Replaced by the `--agent` option's runner.

This project has no SDK runner yet: keep AGENT_RUNNER=fake, or implement
`build_sdk_runner` (see `base.AgentRunner`) and set AGENT_RUNNER=sdk.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Settings
    from .base import AgentRunner


def build_sdk_runner(settings: Settings) -> AgentRunner:
    raise RuntimeError(
        "AGENT_RUNNER=sdk but this project has no SDK runner: implement "
        "build_sdk_runner in agents/sdk.py or set AGENT_RUNNER=fake"
    )
