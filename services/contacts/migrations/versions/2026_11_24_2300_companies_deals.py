"""contacts: companies and their contacts; pipelines with stages, the default `sales` one; deals

Revision ID: contacts_0006
Revises: contacts_0004
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision: str = "contacts_0006"
down_revision: str | None = "contacts_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


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


def downgrade() -> None:
    op.drop_table("company_contact")
    op.drop_table("company")
