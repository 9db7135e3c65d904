"""contacts: what the touchpoint counters need: revenue per other currency, the latest web activity

Revision ID: contacts_0012
Revises: contacts_0011
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.db import UTCDateTime

revision: str = "contacts_0012"
down_revision: str | None = "contacts_0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # Plain ADD COLUMN, which SQLite has: a batch would recreate the table there and lose the expression
    # index `ix_contact_company_name_lower`, which SQLite cannot reflect.
    op.add_column(
        "contact", sa.Column("revenue_by_currency", JSON_DOCUMENT, nullable=False, server_default=sa.text("'{}'"))
    )
    op.add_column("contact", sa.Column("last_web_activity_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    # Dropping columns recreates the table on SQLite; the expression index is made again afterwards.
    op.drop_index("ix_contact_company_name_lower", table_name="contact")
    with op.batch_alter_table("contact") as batch:
        batch.drop_column("last_web_activity_at")
        batch.drop_column("revenue_by_currency")
    op.create_index("ix_contact_company_name_lower", "contact", [sa.text("lower(company_name)")])
