"""kpi: initial schema (outbox and processed-event log)

Revision ID: kpi_0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime
from shared.migrations import create_infrastructure_tables_v1, drop_infrastructure_tables_v1

revision: str = "kpi_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_infrastructure_tables_v1()


def downgrade() -> None:
    drop_infrastructure_tables_v1()
