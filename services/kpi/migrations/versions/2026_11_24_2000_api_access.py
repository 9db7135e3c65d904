"""kpi: API keys as this service knows them, and idempotency records

Revision ID: kpi_0003
Revises: kpi_0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from shared.migrations import create_infrastructure_tables_v3, drop_infrastructure_tables_v3

revision: str = "kpi_0003"
down_revision: str | None = "kpi_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_infrastructure_tables_v3()


def downgrade() -> None:
    drop_infrastructure_tables_v3()
