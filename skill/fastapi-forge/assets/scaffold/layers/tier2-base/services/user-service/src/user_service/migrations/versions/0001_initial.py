"""Users and the messaging tables.

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from forge_app_platform.migrations import create_inbox, create_outbox, drop_inbox, drop_outbox

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    # The messaging tables of forge_app_platform.tables (outbox and inbox).
    create_outbox()
    create_inbox()


def downgrade() -> None:
    drop_inbox()
    drop_outbox()
    op.drop_table("users")
