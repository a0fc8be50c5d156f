"""The read model: one row per order, shaped for the query API.

A Core table built by a function, so the rebuild can fill a fresh copy under another name
with the same projection code and then swap it in."""

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Uuid,
)

from forge_app_platform.db import Base

VIEWS_TABLE = "order_views"


def order_views_table(name: str, metadata: MetaData) -> Table:
    # Constraint names follow the table name: a rebuilt copy can sit beside the live one.
    return Table(
        name,
        metadata,
        Column("order_id", Uuid, nullable=False),
        Column("customer_id", String(64), nullable=False),
        Column("status", String(20), nullable=False),
        Column("total", Numeric(12, 2), nullable=False),
        Column("version", Integer, nullable=False),
        Column("cancel_reason", String(500)),
        # Times of the events, not of the projection: a rebuild reproduces every row.
        Column("placed_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("order_id", name=f"{name}_pkey"),
        Index(f"ix_{name}_customer", "customer_id", "placed_at"),
    )


order_views = order_views_table(VIEWS_TABLE, Base.metadata)
