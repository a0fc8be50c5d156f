"""The order read model and the inbox.

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from forge_app_platform.migrations import create_inbox, drop_inbox

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "order_views",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("total", sa.Numeric(12, 2), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("cancel_reason", sa.String(500), nullable=True),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name="order_views_pkey"),
    )
    op.create_index("ix_order_views_customer", "order_views", ["customer_id", "placed_at"])
    # The inbox of forge_app_platform.tables (the projector's processed events).
    create_inbox()


def downgrade() -> None:
    drop_inbox()
    op.drop_index("ix_order_views_customer", table_name="order_views")
    op.drop_table("order_views")
