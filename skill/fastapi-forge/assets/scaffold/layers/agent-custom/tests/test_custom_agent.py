"""AGENT_RUNNER=sdk selects the custom runner, which works before it is customised."""

from __future__ import annotations

from forge_app.agents.factory import build_runner
from forge_app.agents.sdk import CustomRunner

from .conftest import SettingsFactory
from .helpers import app_client


async def test_sdk_setting_selects_the_custom_runner(
    make_settings: SettingsFactory, headers: dict[str, str]
) -> None:
    settings = make_settings(agent_runner="sdk")
    assert isinstance(build_runner(settings), CustomRunner)
    async with app_client(settings) as client:
        response = await client.post("/agents/run", json={"prompt": "custom"}, headers=headers)
    assert response.status_code == 200
    assert response.json()["output"] == "You said: custom"
