"""journeys: initial schema (outbox and processed-event log, timeline)

Revision ID: journeys_0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime
from shared.migrations import create_infrastructure_tables_v1, drop_infrastructure_tables_v1

revision: str = "journeys_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_infrastructure_tables_v1()
    op.create_table(
        "timeline_entry",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timeline_entry")),
        sa.UniqueConstraint("event_id", name=op.f("uq_timeline_entry_event_id")),
    )
    op.create_index(
        "ix_timeline_entry_contact_time", "timeline_entry", ["contact_id", "occurred_at", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_timeline_entry_contact_time", table_name="timeline_entry")
    op.drop_table("timeline_entry")
    drop_infrastructure_tables_v1()
