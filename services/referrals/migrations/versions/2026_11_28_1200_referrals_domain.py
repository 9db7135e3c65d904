"""referrals domain: programs, affiliates, links, clicks, conversions, postbacks, commissions, ledger, payouts

Revision ID: referrals_0005
Revises: referrals_0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime


revision: str = "referrals_0005"
down_revision: str | None = "referrals_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "affiliate",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("email_hash", sa.String(length=64), nullable=True),
        sa.Column("contact_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_affiliate")),
    )
    with op.batch_alter_table("affiliate", schema=None) as batch_op:
        batch_op.create_index("ix_affiliate_contact_id", ["contact_id"], unique=False)
        batch_op.create_index("ix_affiliate_created_at_id", ["created_at", "id"], unique=False)
        batch_op.create_index("ix_affiliate_email_hash", ["email_hash"], unique=False)

    op.create_table(
        "click",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("visitor_id", sa.String(length=32), nullable=False),
        sa.Column("link_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("program_id", sa.Uuid(), nullable=False),
        sa.Column("affiliate_id", sa.Uuid(), nullable=False),
        sa.Column("clicked_at", UTCDateTime(), nullable=False),
        sa.Column("ip_hash", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("referrer", sa.String(length=2048), nullable=True),
        sa.Column("landing_url", sa.String(length=4096), nullable=False),
        sa.Column("is_bot", sa.Boolean(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=True),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_click")),
    )
    with op.batch_alter_table("click", schema=None) as batch_op:
        batch_op.create_index(
            "ix_click_affiliate_id_clicked_at", ["affiliate_id", "clicked_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_click_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index("ix_click_ip_hash_clicked_at", ["ip_hash", "clicked_at"], unique=False)
        batch_op.create_index("ix_click_link_id_clicked_at", ["link_id", "clicked_at"], unique=False)
        batch_op.create_index("ix_click_program_id_clicked_at", ["program_id", "clicked_at"], unique=False)
        batch_op.create_index("ix_click_visitor_id_clicked_at", ["visitor_id", "clicked_at"], unique=False)

    op.create_table(
        "click_journal",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("applied_offset", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_click_journal")),
    )

    op.create_table(
        "payout",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("affiliate_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("commission_count", sa.Integer(), nullable=False),
        sa.Column("commissions_amount", sa.BigInteger(), nullable=False),
        sa.Column("clawbacks_amount", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("paid_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout")),
    )
    with op.batch_alter_table("payout", schema=None) as batch_op:
        batch_op.create_index("ix_payout_affiliate_id_paid_at", ["affiliate_id", "paid_at"], unique=False)

    op.create_table(
        "postback",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=120), nullable=False),
        sa.Column("transaction_id", sa.String(length=200), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("authenticated_by", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("conversion_id", sa.Uuid(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_postback")),
    )
    with op.batch_alter_table("postback", schema=None) as batch_op:
        batch_op.create_index(
            "ix_postback_conversion_id_received_at", ["conversion_id", "received_at"], unique=False
        )
        batch_op.create_index("ix_postback_source_transaction_id", ["source", "transaction_id"], unique=False)
        batch_op.create_index(
            "uq_postback_source_idempotency_key", ["source", "idempotency_key"], unique=True
        )

    op.create_table(
        "postback_source",
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_postback_source")),
    )

    op.create_table(
        "program",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("attribution_model", sa.String(length=16), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("hold_days", sa.Integer(), nullable=False),
        sa.Column("commission_rules", sa.JSON(), nullable=False),
        sa.Column("referral_rewards", sa.JSON(), nullable=True),
        sa.Column("count_purchases", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_program")),
        sa.UniqueConstraint("key", name=op.f("uq_program_key")),
    )
    with op.batch_alter_table("program", schema=None) as batch_op:
        batch_op.create_index("ix_program_created_at_id", ["created_at", "id"], unique=False)

    op.create_table(
        "conversion",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("program_id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=120), nullable=False),
        sa.Column("transaction_id", sa.String(length=200), nullable=False),
        sa.Column("goal", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_changed_at", UTCDateTime(), nullable=False),
        sa.Column("affiliate_id", sa.Uuid(), nullable=True),
        sa.Column("link_id", sa.Uuid(), nullable=True),
        sa.Column("click_id", sa.String(length=32), nullable=True),
        sa.Column("attributed", sa.Boolean(), nullable=False),
        sa.Column("unattributed_reason", sa.String(length=32), nullable=True),
        sa.Column("attribution", sa.JSON(), nullable=False),
        sa.Column("customer_id", sa.String(length=200), nullable=True),
        sa.Column("contact_id", sa.Uuid(), nullable=True),
        sa.Column("customer_email_hash", sa.String(length=64), nullable=True),
        sa.Column("review", sa.String(length=16), nullable=False),
        sa.Column("fraud_flags", sa.JSON(), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"], ["program.id"], name=op.f("fk_conversion_program_id_program")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversion")),
        sa.UniqueConstraint("source", "transaction_id", name=op.f("uq_conversion_source_transaction_id")),
    )
    with op.batch_alter_table("conversion", schema=None) as batch_op:
        batch_op.create_index(
            "ix_conversion_affiliate_id_occurred_at", ["affiliate_id", "occurred_at"], unique=False
        )
        batch_op.create_index("ix_conversion_contact_id", ["contact_id"], unique=False)
        batch_op.create_index("ix_conversion_created_at_id", ["recorded_at", "id"], unique=False)
        batch_op.create_index(
            "ix_conversion_program_id_customer_id", ["program_id", "customer_id"], unique=False
        )
        batch_op.create_index(
            "ix_conversion_program_id_occurred_at", ["program_id", "occurred_at"], unique=False
        )

    op.create_table(
        "link",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("destination_url", sa.String(length=2048), nullable=False),
        sa.Column("utm_source", sa.String(length=200), nullable=True),
        sa.Column("utm_medium", sa.String(length=200), nullable=True),
        sa.Column("utm_campaign", sa.String(length=200), nullable=True),
        sa.Column("utm_term", sa.String(length=200), nullable=True),
        sa.Column("utm_content", sa.String(length=200), nullable=True),
        sa.Column("program_id", sa.Uuid(), nullable=False),
        sa.Column("affiliate_id", sa.Uuid(), nullable=False),
        sa.Column("archived_at", UTCDateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["affiliate_id"], ["affiliate.id"], name=op.f("fk_link_affiliate_id_affiliate")
        ),
        sa.ForeignKeyConstraint(["program_id"], ["program.id"], name=op.f("fk_link_program_id_program")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link")),
        sa.UniqueConstraint("code", name=op.f("uq_link_code")),
    )
    with op.batch_alter_table("link", schema=None) as batch_op:
        batch_op.create_index("ix_link_affiliate_id_created_at", ["affiliate_id", "created_at"], unique=False)
        batch_op.create_index("ix_link_created_at_id", ["created_at", "id"], unique=False)
        batch_op.create_index("ix_link_program_id", ["program_id"], unique=False)

    op.create_table(
        "commission",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("conversion_id", sa.Uuid(), nullable=False),
        sa.Column("program_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("affiliate_id", sa.Uuid(), nullable=True),
        sa.Column("contact_id", sa.Uuid(), nullable=True),
        sa.Column("rule", sa.String(length=120), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("hold_until", UTCDateTime(), nullable=True),
        sa.Column("payout_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversion_id"], ["conversion.id"], name=op.f("fk_commission_conversion_id_conversion")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commission")),
        sa.UniqueConstraint("conversion_id", "kind", name=op.f("uq_commission_conversion_id_kind")),
    )
    with op.batch_alter_table("commission", schema=None) as batch_op:
        batch_op.create_index(
            "ix_commission_affiliate_id_created_at", ["affiliate_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_commission_created_at_id", ["created_at", "id"], unique=False)
        batch_op.create_index("ix_commission_status_hold_until", ["status", "hold_until"], unique=False)

    op.create_table(
        "commission_ledger",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("commission_id", sa.Uuid(), nullable=False),
        sa.Column("affiliate_id", sa.Uuid(), nullable=True),
        sa.Column("entry", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("payout_id", sa.Uuid(), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["commission_id"], ["commission.id"], name=op.f("fk_commission_ledger_commission_id_commission")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commission_ledger")),
    )
    with op.batch_alter_table("commission_ledger", schema=None) as batch_op:
        batch_op.create_index("ix_commission_ledger_affiliate_id_at", ["affiliate_id", "at"], unique=False)
        batch_op.create_index("ix_commission_ledger_commission_id", ["commission_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("commission_ledger", schema=None) as batch_op:
        batch_op.drop_index("ix_commission_ledger_commission_id")
        batch_op.drop_index("ix_commission_ledger_affiliate_id_at")

    op.drop_table("commission_ledger")
    with op.batch_alter_table("commission", schema=None) as batch_op:
        batch_op.drop_index("ix_commission_status_hold_until")
        batch_op.drop_index("ix_commission_created_at_id")
        batch_op.drop_index("ix_commission_affiliate_id_created_at")

    op.drop_table("commission")
    with op.batch_alter_table("link", schema=None) as batch_op:
        batch_op.drop_index("ix_link_program_id")
        batch_op.drop_index("ix_link_created_at_id")
        batch_op.drop_index("ix_link_affiliate_id_created_at")

    op.drop_table("link")
    with op.batch_alter_table("conversion", schema=None) as batch_op:
        batch_op.drop_index("ix_conversion_program_id_occurred_at")
        batch_op.drop_index("ix_conversion_program_id_customer_id")
        batch_op.drop_index("ix_conversion_created_at_id")
        batch_op.drop_index("ix_conversion_contact_id")
        batch_op.drop_index("ix_conversion_affiliate_id_occurred_at")

    op.drop_table("conversion")
    with op.batch_alter_table("program", schema=None) as batch_op:
        batch_op.drop_index("ix_program_created_at_id")

    op.drop_table("program")
    with op.batch_alter_table("postback", schema=None) as batch_op:
        batch_op.drop_index("uq_postback_source_idempotency_key")
        batch_op.drop_index("ix_postback_source_transaction_id")
        batch_op.drop_index("ix_postback_conversion_id_received_at")

    op.drop_table("postback_source")
    op.drop_table("postback")
    with op.batch_alter_table("payout", schema=None) as batch_op:
        batch_op.drop_index("ix_payout_affiliate_id_paid_at")

    op.drop_table("payout")
    with op.batch_alter_table("click", schema=None) as batch_op:
        batch_op.drop_index("ix_click_visitor_id_clicked_at")
        batch_op.drop_index("ix_click_program_id_clicked_at")
        batch_op.drop_index("ix_click_link_id_clicked_at")
        batch_op.drop_index("ix_click_ip_hash_clicked_at")
        batch_op.drop_index(batch_op.f("ix_click_contact_id"))
        batch_op.drop_index("ix_click_affiliate_id_clicked_at")

    op.drop_table("click")
    op.drop_table("click_journal")
    with op.batch_alter_table("affiliate", schema=None) as batch_op:
        batch_op.drop_index("ix_affiliate_email_hash")
        batch_op.drop_index("ix_affiliate_created_at_id")
        batch_op.drop_index("ix_affiliate_contact_id")

    op.drop_table("affiliate")
