"""journeys: journey maps, each contact's stage per journey, stage history, announcements

Revision ID: journeys_0007
Revises: journeys_0006
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision: str = "journeys_0007"
down_revision: str | None = "journeys_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "journey",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("stages", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("active_from", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey")),
        sa.UniqueConstraint("key", name=op.f("uq_journey_key")),
    )
    op.create_index("ix_journey_created_at_id", "journey", ["created_at", "id"], unique=False)
    op.create_table(
        "journey_version",
        sa.Column("journey_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("stages", sa.JSON(), nullable=False),
        sa.Column("active_from", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["journey_id"], ["journey.id"], name=op.f("fk_journey_version_journey_id_journey"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("journey_id", "version", name=op.f("pk_journey_version")),
    )
    op.create_table(
        "journey_contact_stage",
        sa.Column("journey_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("stage_key", sa.String(length=64), nullable=False),
        sa.Column("entered_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["journey_id"],
            ["journey.id"],
            name=op.f("fk_journey_contact_stage_journey_id_journey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("journey_id", "contact_id", name=op.f("pk_journey_contact_stage")),
    )
    op.create_index(
        "ix_journey_contact_stage_contact_id", "journey_contact_stage", ["contact_id"], unique=False
    )
    op.create_table(
        "journey_stage_event",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("journey_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("stage_key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("cause_event_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["journey_id"],
            ["journey.id"],
            name=op.f("fk_journey_stage_event_journey_id_journey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_stage_event")),
        sa.UniqueConstraint(
            "journey_id",
            "contact_id",
            "stage_key",
            "kind",
            name=op.f("uq_journey_stage_event_journey_id_contact_id_stage_key_kind"),
        ),
    )
    op.create_index(
        "ix_journey_stage_event_journey_id_kind_at", "journey_stage_event", ["journey_id", "kind", "at"], unique=False
    )
    op.create_index("ix_journey_stage_event_contact_id", "journey_stage_event", ["contact_id"], unique=False)
    op.create_table(
        "journey_announcement",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("announced_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_journey_announcement")),
    )
    op.create_table(
        "journey_contact_alias",
        sa.Column("contact_ref", sa.Uuid(), nullable=False),
        sa.Column("survivor_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("contact_ref", name=op.f("pk_journey_contact_alias")),
    )
    op.create_index(
        "ix_journey_contact_alias_survivor_id", "journey_contact_alias", ["survivor_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_journey_contact_alias_survivor_id", table_name="journey_contact_alias")
    op.drop_table("journey_contact_alias")
    op.drop_table("journey_announcement")
    op.drop_index("ix_journey_stage_event_contact_id", table_name="journey_stage_event")
    op.drop_index("ix_journey_stage_event_journey_id_kind_at", table_name="journey_stage_event")
    op.drop_table("journey_stage_event")
    op.drop_index("ix_journey_contact_stage_contact_id", table_name="journey_contact_stage")
    op.drop_table("journey_contact_stage")
    op.drop_table("journey_version")
    op.drop_index("ix_journey_created_at_id", table_name="journey")
    op.drop_table("journey")
