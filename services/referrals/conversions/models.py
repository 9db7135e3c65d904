import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from services.referrals.db import Base
from shared.db import UTCDateTime, utc_now


class Conversion(Base):
    """A lead, a sale or a custom goal, as a source reported it: one per (source, transaction id),
    whatever the retries. Attributed to an affiliate, or kept unattributed with the reason; never lost."""

    __tablename__ = "conversion"
    __table_args__ = (
        UniqueConstraint("source", "transaction_id"),
        Index("ix_conversion_created_at_id", "recorded_at", "id"),
        Index("ix_conversion_affiliate_id_occurred_at", "affiliate_id", "occurred_at"),
        Index("ix_conversion_program_id_occurred_at", "program_id", "occurred_at"),
        Index("ix_conversion_contact_id", "contact_id"),
        # Recurring commission: a customer's earlier conversions in the program.
        Index("ix_conversion_program_id_customer_id", "program_id", "customer_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    program_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("program.id"))
    # Who reported it: a postback key's id, or the name of a signing source.
    source: Mapped[str] = mapped_column(String(120))
    transaction_id: Mapped[str] = mapped_column(String(200))
    # `lead`, `sale`, or a custom goal the program names.
    goal: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    # `pending`, `approved`, `rejected`, `refunded`, `chargeback`.
    status: Mapped[str] = mapped_column(String(16))
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    # Credit: null when unattributed.
    affiliate_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    link_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    click_id: Mapped[str | None] = mapped_column(String(32))
    attributed: Mapped[bool] = mapped_column(Boolean)
    # `no_click`, `unknown_click`, `click_expired`, `unknown_code`, `bot_click`, ...; null when attributed.
    unattributed_reason: Mapped[str | None] = mapped_column(String(32))
    # The decision, as `GET /v1/conversions/{id}/attribution` explains it: rule, window, candidates, winner.
    attribution: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The customer: the advertiser's id for them, the contact when known, the keyed hash of their email.
    customer_id: Mapped[str | None] = mapped_column(String(200))
    contact_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    customer_email_hash: Mapped[str | None] = mapped_column(String(64))
    # Fraud checks: `none`, `held` (flagged, waiting for a review), `approved`, `rejected`.
    review: Mapped[str] = mapped_column(String(16), default="none")
    # [{"check": "self_referral" | "click_to_conversion_too_fast" | "click_burst", "detail": "..."}]
    fraud_flags: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (read once, by the mapper)

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


class Postback(Base):
    """Every postback received, kept with the answer given: a retry is answered from here, marked as a
    duplicate, and the history of a conversion's statuses can be read back."""

    __tablename__ = "postback"
    __table_args__ = (
        Index("ix_postback_conversion_id_received_at", "conversion_id", "received_at"),
        Index("ix_postback_source_transaction_id", "source", "transaction_id"),
        # `Idempotency-Key` per source: the same key is the same postback.
        Index("uq_postback_source_idempotency_key", "source", "idempotency_key", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    source: Mapped[str] = mapped_column(String(120))
    transaction_id: Mapped[str] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    # `GET` or `POST`; how it was authenticated: `key` or `signature`.
    method: Mapped[str] = mapped_column(String(8))
    authenticated_by: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    # `recorded`, `duplicate`, `status_changed`, `stale` (an older status after a newer one).
    outcome: Mapped[str] = mapped_column(String(16))
    conversion_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


class PostbackSource(Base):
    """A tracker or shop that signs its postbacks (HMAC-SHA256 over timestamp and body) instead of
    sending an API key. Its secret is not stored: it is derived from `salt` with the deployment's
    key (`shared.identity`), so a copy of the database alone cannot sign a postback."""

    __tablename__ = "postback_source"

    # The source's name: in the signed route's path, and the `source` of its conversions.
    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    description: Mapped[str | None] = mapped_column(String(200))
    salt: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
