"""contacts: a version per contact for optimistic concurrency; an index for the newest-first list

Revision ID: contacts_0003
Revises: contacts_0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "contacts_0003"
down_revision: str | None = "contacts_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows start at version 1 through the server default. batch_alter_table: SQLite alters
    # tables only in part, and Alembic recreates the table there when a change needs it.
    with op.batch_alter_table("contact") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1")))
    op.create_index("ix_contact_created_at_id", "contact", ["created_at", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_contact_created_at_id", table_name="contact")
    with op.batch_alter_table("contact") as batch:
        batch.drop_column("version")
