"""journeys: deal stage changes on the timeline; an event once per contact, deals' contacts, aliases

Revision ID: journeys_0009
Revises: journeys_0007
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "journeys_0009"
down_revision: str | None = "journeys_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A deal's move goes on each of its contacts' timelines: one event, several entries.
    with op.batch_alter_table("timeline_entry") as batch:
        batch.drop_constraint("uq_timeline_entry_event_id", type_="unique")
        batch.create_unique_constraint("uq_timeline_entry_event_id_contact_id", ["event_id", "contact_id"])
    op.create_table(
        "timeline_deal_contact",
        sa.Column("deal_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("deal_id", "contact_id", name=op.f("pk_timeline_deal_contact")),
    )
    op.create_index(
        "ix_timeline_deal_contact_contact_id", "timeline_deal_contact", ["contact_id"], unique=False
    )
    op.create_table(
        "timeline_contact_alias",
        sa.Column("contact_ref", sa.Uuid(), nullable=False),
        sa.Column("survivor_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("contact_ref", name=op.f("pk_timeline_contact_alias")),
    )
    op.create_index(
        "ix_timeline_contact_alias_survivor_id", "timeline_contact_alias", ["survivor_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_timeline_contact_alias_survivor_id", table_name="timeline_contact_alias")
    op.drop_table("timeline_contact_alias")
    op.drop_index("ix_timeline_deal_contact_contact_id", table_name="timeline_deal_contact")
    op.drop_table("timeline_deal_contact")
    # An event on several timelines keeps one entry (the lowest id), so that an event is unique again.
    entry = sa.table("timeline_entry", sa.column("id", sa.Uuid()), sa.column("event_id", sa.String()))
    other = entry.alias("other")
    op.execute(
        entry.delete().where(
            sa.exists().where(other.c.event_id == entry.c.event_id, other.c.id < entry.c.id)
        )
    )
    with op.batch_alter_table("timeline_entry") as batch:
        batch.drop_constraint("uq_timeline_entry_event_id_contact_id", type_="unique")
        batch.create_unique_constraint("uq_timeline_entry_event_id", ["event_id"])
