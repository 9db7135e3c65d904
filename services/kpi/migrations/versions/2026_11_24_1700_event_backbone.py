"""kpi: consumer positions, refused outbox rows, pruning index for processed-event ids

Revision ID: kpi_0002
Revises: kpi_0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from shared.migrations import create_infrastructure_tables_v2, drop_infrastructure_tables_v2

revision: str = "kpi_0002"
down_revision: str | None = "kpi_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_infrastructure_tables_v2()


def downgrade() -> None:
    drop_infrastructure_tables_v2()
