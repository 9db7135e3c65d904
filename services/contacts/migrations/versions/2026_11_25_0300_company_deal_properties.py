"""contacts: custom property values on companies and deals

Revision ID: contacts_0011
Revises: contacts_0009
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "contacts_0011"
down_revision: str | None = "contacts_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# Their searchable copies go in the existing `custom_value` table, keyed by object type.
TABLES = ("company", "deal")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("properties", JSON_DOCUMENT, nullable=False, server_default=sa.text("'{}'"))
            )


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM custom_value WHERE object_type IN ('company', 'deal')"))
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("properties")
