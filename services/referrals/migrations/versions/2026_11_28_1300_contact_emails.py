"""referrals: each contact's email hashes, from the contacts events

Revision ID: referrals_0006
Revises: referrals_0005
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "referrals_0006"
down_revision: str | None = "referrals_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contact_email",
        sa.Column("email_hash", sa.String(length=64), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("email_hash", name=op.f("pk_contact_email")),
    )
    op.create_index("ix_contact_email_contact_id", "contact_email", ["contact_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_contact_email_contact_id", table_name="contact_email")
    op.drop_table("contact_email")
