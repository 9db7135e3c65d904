"""contacts: duplicate-candidate indexes (canonical emails, mobile phones, company names) and merges

Revision ID: contacts_0008
Revises: contacts_0007
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from services.contacts.contacts.matching import canonical_email
from shared.db import UTCDateTime

revision: str = "contacts_0008"
down_revision: str | None = "contacts_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BACKFILL_BATCH = 5000


def _backfill_canonical_emails() -> None:
    """Every email identity written before this revision gets its canonical form, a batch at a time."""
    identity = sa.table(
        "contact_identity", sa.column("namespace"), sa.column("value"), sa.column("canonical")
    )
    connection = op.get_bind()
    after = ""
    while True:
        values = list(
            connection.scalars(
                sa.select(identity.c.value)
                .where(identity.c.namespace == "email", identity.c.value > after)
                .order_by(identity.c.value)
                .limit(BACKFILL_BATCH)
            )
        )
        if not values:
            return
        connection.execute(
            sa.update(identity)
            .where(identity.c.namespace == "email", identity.c.value == sa.bindparam("old_value"))
            .values(canonical=sa.bindparam("new_canonical")),
            [{"old_value": value, "new_canonical": canonical_email(value)} for value in values],
        )
        after = values[-1]


def upgrade() -> None:
    with op.batch_alter_table("contact_identity") as batch:
        batch.add_column(sa.Column("canonical", sa.String(length=320), nullable=True))
    _backfill_canonical_emails()
    op.create_index("ix_contact_identity_canonical", "contact_identity", ["canonical"])
    op.create_index("ix_contact_mobile_phone", "contact", ["mobile_phone"])
    op.create_index("ix_contact_company_name_lower", "contact", [sa.text("lower(company_name)")])
    op.create_table(
        "contact_merge",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("survivor_id", sa.Uuid(), nullable=False),
        sa.Column("merged_id", sa.Uuid(), nullable=False),
        sa.Column("merged_at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("decisions", JSON_DOCUMENT, nullable=False),
        sa.Column("matched", JSON_DOCUMENT, nullable=False),
        sa.Column("moved", JSON_DOCUMENT, nullable=False),
        sa.Column("merged_snapshot", JSON_DOCUMENT, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_merge")),
    )
    op.create_index(
        "ix_contact_merge_survivor_id_merged_at", "contact_merge", ["survivor_id", "merged_at", "id"]
    )
    op.create_index("uq_contact_merge_merged_id", "contact_merge", ["merged_id"], unique=True)


def downgrade() -> None:
    op.drop_table("contact_merge")
    op.drop_index("ix_contact_company_name_lower", table_name="contact")
    op.drop_index("ix_contact_mobile_phone", table_name="contact")
    op.drop_index("ix_contact_identity_canonical", table_name="contact_identity")
    with op.batch_alter_table("contact_identity") as batch:
        batch.drop_column("canonical")
