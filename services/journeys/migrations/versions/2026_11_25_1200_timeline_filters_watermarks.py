"""journeys: the timeline's filter columns and their indexes; consumers' completeness watermarks

Revision ID: journeys_0006
Revises: journeys_0008
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.migrations import create_infrastructure_tables_v4, drop_infrastructure_tables_v4

revision: str = "journeys_0006"
down_revision: str | None = "journeys_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FILTER_INDEXES = {
    "ix_timeline_entry_contact_team_time": "team",
    "ix_timeline_entry_contact_channel_time": "channel",
    "ix_timeline_entry_contact_kind_time": "kind",
}


def _from_properties(name: str) -> sa.ColumnElement[str]:
    """A touchpoint entry's `properties[name]` as text, on either database."""
    properties = sa.column("properties", sa.JSON())
    if op.get_bind().dialect.name == "postgresql":
        return sa.type_coerce(properties, sa.JSON()).op("->>")(name)
    return sa.func.json_extract(properties, f"$.{name}")


def upgrade() -> None:
    create_infrastructure_tables_v4()
    with op.batch_alter_table("timeline_entry") as batch:
        batch.add_column(sa.Column("team", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("channel", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("kind", sa.String(length=200), nullable=True))
    # The entries there are already: touchpoints carry these in their properties, the rest has its
    # event type as its kind. (A `crm replay` of journeys.timeline would write the same.)
    entry = sa.table(
        "timeline_entry",
        sa.column("event_type", sa.String()),
        sa.column("team", sa.String()),
        sa.column("channel", sa.String()),
        sa.column("kind", sa.String()),
    )
    touchpoint = entry.c.event_type == "crm.touchpoint.recorded"
    op.execute(
        entry.update()
        .where(touchpoint)
        .values(team=_from_properties("team"), channel=_from_properties("channel"), kind=_from_properties("type"))
    )
    op.execute(entry.update().where(entry.c.kind.is_(None)).values(kind=entry.c.event_type))
    with op.batch_alter_table("timeline_entry") as batch:
        batch.alter_column("kind", existing_type=sa.String(length=200), nullable=False)
    for name, column in _FILTER_INDEXES.items():
        op.create_index(name, "timeline_entry", ["contact_id", column, "occurred_at", "id"], unique=False)


def downgrade() -> None:
    for name in _FILTER_INDEXES:
        op.drop_index(name, table_name="timeline_entry")
    with op.batch_alter_table("timeline_entry") as batch:
        batch.drop_column("kind")
        batch.drop_column("channel")
        batch.drop_column("team")
    drop_infrastructure_tables_v4()
