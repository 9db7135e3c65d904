"""journeys: each touchpoint keeps the id of the event that announced it

Revision ID: journeys_0005
Revises: journeys_0004
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "journeys_0005"
down_revision: str | None = "journeys_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Touchpoints recorded before this revision get an id of their own: their timeline entries were
    # made from their events already, and an entry for them is only ever made again by replay, which
    # goes by the event.
    with op.batch_alter_table("touchpoint") as batch:
        batch.add_column(sa.Column("event_id", sa.String(length=36), nullable=True))
    op.execute("UPDATE touchpoint SET event_id = CAST(id AS VARCHAR(36)) WHERE event_id IS NULL")
    with op.batch_alter_table("touchpoint") as batch:
        batch.alter_column("event_id", existing_type=sa.String(length=36), nullable=False)
        batch.create_unique_constraint("uq_touchpoint_event_id", ["event_id"])


def downgrade() -> None:
    with op.batch_alter_table("touchpoint") as batch:
        batch.drop_constraint("uq_touchpoint_event_id", type_="unique")
        batch.drop_column("event_id")
