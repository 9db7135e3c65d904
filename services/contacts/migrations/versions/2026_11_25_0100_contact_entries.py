"""contacts: a contact's entries: notes, reviews, ratings, feedback and suggestions, with scores

Revision ID: contacts_0009
Revises: contacts_0008
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision: str = "contacts_0009"
down_revision: str | None = "contacts_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contact_entry",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("scale", sa.String(length=20), nullable=True),
        sa.Column("channel", sa.String(length=64), nullable=True),
        sa.Column("reference_type", sa.String(length=32), nullable=True),
        sa.Column("reference_id", sa.String(length=200), nullable=True),
        sa.Column("author", sa.String(length=100), nullable=True),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "(score IS NULL) = (scale IS NULL)", name=op.f("ck_contact_entry_score_with_scale")
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name=op.f("fk_contact_entry_contact_id_contact"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_entry")),
    )
    op.create_index(
        "ix_contact_entry_contact_id_occurred_at_id",
        "contact_entry",
        ["contact_id", "occurred_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_contact_entry_contact_id_occurred_at_id", table_name="contact_entry")
    op.drop_table("contact_entry")
