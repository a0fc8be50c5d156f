"""The messaging tables of forge_app_platform.tables (outbox and inbox): agent-service on
the system's event bus (agent_service/integration.py).

Revision ID: 0003
Revises: 0002 (db-sql's job lease, shared with Tier 1)
"""

from collections.abc import Sequence

from forge_app_platform.migrations import create_inbox, create_outbox, drop_inbox, drop_outbox

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_outbox()
    create_inbox()


def downgrade() -> None:
    drop_inbox()
    drop_outbox()
