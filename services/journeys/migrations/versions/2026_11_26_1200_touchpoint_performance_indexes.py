"""journeys: indexes for content and campaign performance (touchpoints by content id or campaign, in time)

Revision ID: journeys_0008
Revises: journeys_0005
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "journeys_0008"
down_revision: str | None = "journeys_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_touchpoint_content_id_occurred_at", "touchpoint", ["content_id", "occurred_at"], unique=False
    )
    op.create_index(
        "ix_touchpoint_campaign_occurred_at", "touchpoint", ["campaign", "occurred_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_touchpoint_campaign_occurred_at", table_name="touchpoint")
    op.drop_index("ix_touchpoint_content_id_occurred_at", table_name="touchpoint")
