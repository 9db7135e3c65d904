"""contacts: consent and subscriptions with every statement kept; segments; erasure and its receipts

Revision ID: contacts_0007
Revises: contacts_0006
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.db import UTCDateTime

revision: str = "contacts_0007"
down_revision: str | None = "contacts_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("contact") as batch:
        for name in ("consents", "subscriptions"):
            batch.add_column(sa.Column(name, JSON_DOCUMENT, nullable=False, server_default=sa.text("'{}'")))
        batch.add_column(sa.Column("erased_at", UTCDateTime(), nullable=True))
    op.create_table(
        "consent_record",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("proof", JSON_DOCUMENT, nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name=op.f("fk_consent_record_contact_id_contact"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_record")),
    )
    op.create_index(
        "ix_consent_record_contact_id_at", "consent_record", ["contact_id", "recorded_at", "id"], unique=False
    )


    op.create_table(
        "segment",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("filter", JSON_DOCUMENT, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment")),
    )


    op.create_table(
        "erasure_receipt",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_receipt")),
        sa.UniqueConstraint("contact_id", name=op.f("uq_erasure_receipt_contact_id")),
    )
    op.create_table(
        "erasure_confirmation",
        sa.Column("receipt_id", sa.Uuid(), nullable=False),
        sa.Column("service", sa.String(length=40), nullable=False),
        sa.Column("confirmed_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["receipt_id"],
            ["erasure_receipt.id"],
            name=op.f("fk_erasure_confirmation_receipt_id_erasure_receipt"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("receipt_id", "service", name=op.f("pk_erasure_confirmation")),
    )


def downgrade() -> None:
    op.drop_table("erasure_confirmation")
    op.drop_table("erasure_receipt")
    op.drop_table("segment")
    op.drop_table("consent_record")
    with op.batch_alter_table("contact") as batch:
        batch.drop_column("erased_at")
        batch.drop_column("subscriptions")
        batch.drop_column("consents")
