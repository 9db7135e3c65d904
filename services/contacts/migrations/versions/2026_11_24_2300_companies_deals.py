"""contacts: companies and their contacts; pipelines with stages, the default `sales` one; deals

Revision ID: contacts_0006
Revises: contacts_0005
Create Date: 2026-11-24
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision: str = "contacts_0006"
down_revision: str | None = "contacts_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Fixed, so that every installation's default pipeline has the same id (documents and tests name it).
SALES_PIPELINE_ID = uuid.UUID("5a1e5000-0000-4000-8000-000000000001")
# key, label, win probability, kind; in order.
SALES_STAGES = [
    ("prospecting", "Prospecting", 10, "open"),
    ("qualification", "Qualification", 20, "open"),
    ("needs_analysis", "Needs analysis", 30, "open"),
    ("demo", "Demo", 40, "open"),
    ("proposal", "Proposal", 60, "open"),
    ("negotiation", "Negotiation", 75, "open"),
    ("commitment", "Commitment", 90, "open"),
    ("won", "Won", 100, "won"),
    ("lost", "Lost", 0, "lost"),
]


def _association(name: str, left: str, right: str) -> None:
    op.create_table(
        name,
        sa.Column(f"{left}_id", sa.Uuid(), nullable=False),
        sa.Column(f"{right}_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            [f"{left}_id"], [f"{left}.id"], name=op.f(f"fk_{name}_{left}_id_{left}"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            [f"{right}_id"], [f"{right}.id"], name=op.f(f"fk_{name}_{right}_id_{right}"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint(f"{left}_id", f"{right}_id", name=op.f(f"pk_{name}")),
    )
    op.create_index(f"ix_{name}_{right}_id", name, [f"{right}_id"], unique=False)


def upgrade() -> None:
    op.create_table(
        "company",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=True),
        sa.Column("industry", sa.String(length=100), nullable=True),
        sa.Column("employee_count", sa.Integer(), nullable=True),
        sa.Column("annual_revenue", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("region", sa.String(length=100), nullable=True),
        sa.Column("owner", sa.String(length=100), nullable=True),
        sa.Column("phone", sa.String(length=50), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_company")),
        sa.UniqueConstraint("domain", name=op.f("uq_company_domain")),
    )
    op.create_index("ix_company_created_at_id", "company", ["created_at", "id"], unique=False)
    _association("company_contact", "company", "contact")
    op.create_index(
        "ix_company_contact_company_id_created_at_contact_id",
        "company_contact",
        ["company_id", "created_at", "contact_id"],
        unique=False,
    )

    pipeline = op.create_table(
        "pipeline",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline")),
        sa.UniqueConstraint("key", name=op.f("uq_pipeline_key")),
    )
    op.create_index("ix_pipeline_created_at_id", "pipeline", ["created_at", "id"], unique=False)
    stage = op.create_table(
        "pipeline_stage",
        sa.Column("pipeline_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("probability", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["pipeline.id"],
            name=op.f("fk_pipeline_stage_pipeline_id_pipeline"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pipeline_id", "key", name=op.f("pk_pipeline_stage")),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        pipeline,
        [
            {
                "id": SALES_PIPELINE_ID,
                "key": "sales",
                "name": "Sales",
                "created_at": now,
                "updated_at": now,
                "version": 1,
            }
        ],
    )
    op.bulk_insert(
        stage,
        [
            {
                "pipeline_id": SALES_PIPELINE_ID,
                "key": key,
                "label": label,
                "position": position,
                "probability": probability,
                "kind": kind,
            }
            for position, (key, label, probability, kind) in enumerate(SALES_STAGES, start=1)
        ],
    )

    op.create_table(
        "deal",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("pipeline_id", sa.Uuid(), nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("owner", sa.String(length=100), nullable=True),
        sa.Column("expected_close_date", sa.Date(), nullable=True),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("close_reason", sa.String(length=64), nullable=True),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id", "stage"],
            ["pipeline_stage.pipeline_id", "pipeline_stage.key"],
            name=op.f("fk_deal_pipeline_id_pipeline_stage"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deal")),
        sa.UniqueConstraint("external_id", name=op.f("uq_deal_external_id")),
    )
    op.create_index("ix_deal_created_at_id", "deal", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_deal_pipeline_id_stage_created_at_id",
        "deal",
        ["pipeline_id", "stage", "created_at", "id"],
        unique=False,
    )
    op.create_index("ix_deal_owner_created_at_id", "deal", ["owner", "created_at", "id"], unique=False)
    op.create_table(
        "deal_stage_change",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("deal_id", sa.Uuid(), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("from_stage", sa.String(length=64), nullable=True),
        sa.Column("to_stage", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["deal.id"], name=op.f("fk_deal_stage_change_deal_id_deal"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deal_stage_change")),
    )
    op.create_index("ix_deal_stage_change_deal_id_id", "deal_stage_change", ["deal_id", "id"], unique=False)
    _association("deal_contact", "deal", "contact")
    _association("deal_company", "deal", "company")


def downgrade() -> None:
    for table in ("deal_company", "deal_contact", "deal_stage_change", "deal", "pipeline_stage", "pipeline"):
        op.drop_table(table)
    op.drop_table("company_contact")
    op.drop_table("company")
