"""agent-service's whole configuration as a service of the system (Tier 2 mounts this
module with integration.py): the project's settings plus the bus's (BROKER_URL, CONSUMER_*,
OUTBOX_POLL_SECONDS), from the same environment. Only the API process reads it; the worker
needs none of the bus's settings (it only writes outbox rows)."""

from __future__ import annotations

from forge_app_platform.settings import ServiceSettings

from .config import Settings as AppSettings


class BusSettings(ServiceSettings):
    """The bus's part alone: what integration.py reads (the app's own, auth among them,
    are the app's)."""

    service_name: str = "agent-service"


class Settings(AppSettings, BusSettings):
    service_name: str = "agent-service"
