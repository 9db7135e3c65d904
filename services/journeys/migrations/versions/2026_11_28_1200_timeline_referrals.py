"""journeys: referral clicks and conversions, to put them on the contacts' timelines

Revision ID: journeys_0010
Revises: journeys_0009
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision: str = "journeys_0010"
down_revision: str | None = "journeys_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "timeline_referral_click",
        sa.Column("click_id", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_source", sa.String(length=200), nullable=False),
        sa.Column("clicked_at", UTCDateTime(), nullable=False),
        sa.Column("link_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("program_id", sa.Uuid(), nullable=False),
        sa.Column("affiliate_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("click_id", name=op.f("pk_timeline_referral_click")),
    )
    op.create_index(
        "ix_timeline_referral_click_contact_id", "timeline_referral_click", ["contact_id"], unique=False
    )
    op.create_table(
        "timeline_referral_conversion",
        sa.Column("conversion_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("click_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("conversion_id", name=op.f("pk_timeline_referral_conversion")),
    )
    op.create_index(
        "ix_timeline_referral_conversion_contact_id",
        "timeline_referral_conversion",
        ["contact_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_timeline_referral_conversion_contact_id", table_name="timeline_referral_conversion")
    op.drop_table("timeline_referral_conversion")
    op.drop_index("ix_timeline_referral_click_contact_id", table_name="timeline_referral_click")
    op.drop_table("timeline_referral_click")
