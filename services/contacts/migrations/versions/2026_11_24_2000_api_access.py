"""contacts: API keys as this service knows them, and idempotency records

Revision ID: contacts_0004
Revises: contacts_0003
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from shared.migrations import create_infrastructure_tables_v3, drop_infrastructure_tables_v3

revision: str = "contacts_0004"
down_revision: str | None = "contacts_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_infrastructure_tables_v3()


def downgrade() -> None:
    drop_infrastructure_tables_v3()
