"""contacts: consumers' completeness watermarks

Revision ID: contacts_0013
Revises: contacts_0012
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from shared.migrations import create_infrastructure_tables_v4, drop_infrastructure_tables_v4

revision: str = "contacts_0013"
down_revision: str | None = "contacts_0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_infrastructure_tables_v4()


def downgrade() -> None:
    drop_infrastructure_tables_v4()
