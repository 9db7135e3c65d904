"""journeys: touchpoints, and the identity links that resolve them to contacts

Revision ID: journeys_0004
Revises: journeys_0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision: str = "journeys_0004"
down_revision: str | None = "journeys_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "touchpoint",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=True),
        sa.Column("contact_id", sa.Uuid(), nullable=True),
        sa.Column("anonymous_id", sa.String(length=200), nullable=True),
        sa.Column("email_hash", sa.String(length=64), nullable=True),
        sa.Column("external_system", sa.String(length=64), nullable=True),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=True),
        sa.Column("team", sa.String(length=16), nullable=True),
        sa.Column("campaign", sa.String(length=200), nullable=True),
        sa.Column("content_id", sa.String(length=200), nullable=True),
        sa.Column("utm_source", sa.String(length=200), nullable=True),
        sa.Column("utm_medium", sa.String(length=200), nullable=True),
        sa.Column("utm_campaign", sa.String(length=200), nullable=True),
        sa.Column("utm_term", sa.String(length=200), nullable=True),
        sa.Column("utm_content", sa.String(length=200), nullable=True),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("revenue", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("order_id", sa.String(length=200), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_touchpoint")),
    )
    op.create_index(
        "ix_touchpoint_contact_id_occurred_at_id", "touchpoint", ["contact_id", "occurred_at", "id"], unique=False
    )
    op.create_index("ix_touchpoint_anonymous_id", "touchpoint", ["anonymous_id"], unique=False)
    op.create_index("ix_touchpoint_email_hash", "touchpoint", ["email_hash"], unique=False)
    op.create_index(
        "ix_touchpoint_external_system_external_id",
        "touchpoint",
        ["external_system", "external_id"],
        unique=False,
    )
    op.create_index("uq_touchpoint_message_id", "touchpoint", ["message_id"], unique=True)
    op.create_table(
        "contact_identity_link",
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("linked_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "value", name=op.f("pk_contact_identity_link")),
    )
    op.create_index(
        "ix_contact_identity_link_contact_id", "contact_identity_link", ["contact_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_contact_identity_link_contact_id", table_name="contact_identity_link")
    op.drop_table("contact_identity_link")
    op.drop_index("uq_touchpoint_message_id", table_name="touchpoint")
    op.drop_index("ix_touchpoint_external_system_external_id", table_name="touchpoint")
    op.drop_index("ix_touchpoint_email_hash", table_name="touchpoint")
    op.drop_index("ix_touchpoint_anonymous_id", table_name="touchpoint")
    op.drop_index("ix_touchpoint_contact_id_occurred_at_id", table_name="touchpoint")
    op.drop_table("touchpoint")
