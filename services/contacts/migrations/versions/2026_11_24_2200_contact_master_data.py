"""contacts: identities, descriptive fields, tags, lifecycle transitions, property history, custom properties

Revision ID: contacts_0005
Revises: contacts_0004
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.db import UTCDateTime

revision: str = "contacts_0005"
down_revision: str | None = "contacts_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_NEW_COLUMNS = (
    ("mobile_phone", sa.String(length=50)),
    ("street", sa.String(length=300)),
    ("city", sa.String(length=200)),
    ("postal_code", sa.String(length=20)),
    ("state", sa.String(length=200)),
    ("country", sa.String(length=2)),
    ("birthday", sa.Date()),
    ("job_title", sa.String(length=200)),
    ("company_name", sa.String(length=200)),
    ("owner", sa.String(length=200)),
    ("region", sa.String(length=100)),
    ("last_activity_at", UTCDateTime()),
)
_INDEXES = (
    ("ix_contact_email", ["email"]),
    ("ix_contact_lifecycle_stage_id", ["lifecycle_stage", "id"]),
    ("ix_contact_owner_id", ["owner", "id"]),
    ("ix_contact_country_id", ["country", "id"]),
    ("ix_contact_phone", ["phone"]),
    ("ix_contact_last_name_id", ["last_name", "id"]),
)


def upgrade() -> None:
    # The primary email stays on the row; its uniqueness moves to contact_identity, with every other email.
    with op.batch_alter_table("contact") as batch:
        batch.drop_constraint("uq_contact_email", type_="unique")
        batch.alter_column("email", existing_type=sa.String(length=320), nullable=True)
        for name, column_type in _NEW_COLUMNS:
            batch.add_column(sa.Column(name, column_type, nullable=True))
        batch.add_column(sa.Column("properties", JSON_DOCUMENT, nullable=False, server_default=sa.text("'{}'")))
        for name in ("visits", "purchases"):
            batch.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default=sa.text("0")))
        batch.add_column(sa.Column("revenue_minor", sa.BigInteger(), nullable=False, server_default=sa.text("0")))
    for name, columns in _INDEXES:
        op.create_index(name, "contact", columns, unique=False)

    op.create_table(
        "contact_identity",
        sa.Column("namespace", sa.String(length=120), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name=op.f("fk_contact_identity_contact_id_contact"),
            ondelete="CASCADE",
            deferrable=True,
            initially="DEFERRED",
        ),
        sa.PrimaryKeyConstraint("namespace", "value", name=op.f("pk_contact_identity")),
    )
    op.create_index("ix_contact_identity_contact_id", "contact_identity", ["contact_id"], unique=False)
    op.execute(
        "INSERT INTO contact_identity (namespace, value, contact_id, created_at) "
        "SELECT 'email', email, id, created_at FROM contact"
    )

    op.create_table(
        "contact_tag",
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name=op.f("fk_contact_tag_contact_id_contact"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("contact_id", "tag", name=op.f("pk_contact_tag")),
    )
    op.create_index("ix_contact_tag_tag_contact_id", "contact_tag", ["tag", "contact_id"], unique=False)

    op.create_table(
        "lifecycle_transition",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("from_stage", sa.String(length=40), nullable=True),
        sa.Column("to_stage", sa.String(length=40), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name=op.f("fk_lifecycle_transition_contact_id_contact"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lifecycle_transition")),
    )
    op.create_index(
        "ix_lifecycle_transition_contact_id_at",
        "lifecycle_transition",
        ["contact_id", "changed_at", "id"],
        unique=False,
    )

    op.create_table(
        "contact_property_change",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("property", sa.String(length=140), nullable=False),
        sa.Column("old_value", JSON_DOCUMENT, nullable=True),
        sa.Column("new_value", JSON_DOCUMENT, nullable=True),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("source", sa.String(length=60), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name=op.f("fk_contact_property_change_contact_id_contact"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_property_change")),
    )
    op.create_index(
        "ix_contact_property_change_contact_id_at",
        "contact_property_change",
        ["contact_id", "changed_at", "id"],
        unique=False,
    )

    op.create_table(
        "property_definition",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("object_type", sa.String(length=20), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=True),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("options", JSON_DOCUMENT, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("personal_data", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_property_definition")),
    )
    op.create_index(
        "uq_property_definition_object_type_key", "property_definition", ["object_type", "key"], unique=True
    )

    op.create_table(
        "custom_value",
        sa.Column("object_type", sa.String(length=20), nullable=False),
        sa.Column("object_id", sa.Uuid(), nullable=False),
        sa.Column("property_key", sa.String(length=64), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("value_text", sa.String(length=1000), nullable=True),
        sa.Column("value_number", sa.Float(), nullable=True),
        sa.Column("value_date", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint(
            "object_type", "object_id", "property_key", "ordinal", name=op.f("pk_custom_value")
        ),
    )
    for kind in ("text", "number", "date"):
        op.create_index(
            f"ix_custom_value_{kind}",
            "custom_value",
            ["object_type", "property_key", f"value_{kind}", "object_id"],
            unique=False,
        )
    op.create_index("ix_custom_value_object", "custom_value", ["object_type", "object_id"], unique=False)


def downgrade() -> None:
    op.drop_table("custom_value")
    op.drop_table("property_definition")
    op.drop_table("contact_property_change")
    op.drop_table("lifecycle_transition")
    op.drop_table("contact_tag")
    op.drop_table("contact_identity")
    for name, _columns in _INDEXES:
        op.drop_index(name, table_name="contact")
    # Contacts without an email cannot go back; the older schema has no place for them.
    op.execute("DELETE FROM contact WHERE email IS NULL")
    with op.batch_alter_table("contact") as batch:
        for name in ("revenue_minor", "purchases", "visits", "properties"):
            batch.drop_column(name)
        for name, _column_type in reversed(_NEW_COLUMNS):
            batch.drop_column(name)
        batch.alter_column("email", existing_type=sa.String(length=320), nullable=False)
        batch.create_unique_constraint("uq_contact_email", ["email"])
