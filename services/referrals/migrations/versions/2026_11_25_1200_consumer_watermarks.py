"""referrals: consumers' completeness watermarks

Revision ID: referrals_0004
Revises: referrals_0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from shared.migrations import create_infrastructure_tables_v4, drop_infrastructure_tables_v4

revision: str = "referrals_0004"
down_revision: str | None = "referrals_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_infrastructure_tables_v4()


def downgrade() -> None:
    drop_infrastructure_tables_v4()
