import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.contacts.contacts.models import JSONDocument
from services.contacts.db import Base
from shared.db import UTCDateTime, utc_now


class Deal(Base):
    __tablename__ = "deal"
    __table_args__ = (
        # The stage must be one of the pipeline's: the database refuses to remove a stage a deal is in.
        ForeignKeyConstraint(["pipeline_id", "stage"], ["pipeline_stage.pipeline_id", "pipeline_stage.key"]),
        # The list, newest first, unfiltered and with each filter (`repository.NEWEST_FIRST`); the
        # pipeline-and-stage one also finds the deals in a stage.
        Index("ix_deal_created_at_id", "created_at", "id"),
        Index("ix_deal_pipeline_id_stage_created_at_id", "pipeline_id", "stage", "created_at", "id"),
        Index("ix_deal_owner_created_at_id", "owner", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(300))
    pipeline_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    stage: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    owner: Mapped[str | None] = mapped_column(String(100))
    expected_close_date: Mapped[date | None] = mapped_column(Date)
    # The caller's own id for the deal (its CRM or shop); batch upserts match on it.
    external_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    close_reason: Mapped[str | None] = mapped_column(String(64))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Custom property values by key, as read back; `CustomValue` rows are their searchable copy.
    properties: Mapped[dict[str, Any]] = mapped_column(
        JSONDocument, default=dict, server_default=text("'{}'")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now, onupdate=utc_now)
    # Goes up with associations too: they are part of the deal's representation, hence of its ETag.
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (read once, by the mapper)

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


class DealStageChange(Base):
    """A deal's stage history: one row per move, the first one (no `from_stage`) at creation."""

    __tablename__ = "deal_stage_change"
    __table_args__ = (Index("ix_deal_stage_change_deal_id_id", "deal_id", "id"),)

    # A sequence rather than a time: two moves in one clock tick still keep their order.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    deal_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("deal.id", ondelete="CASCADE"))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    actor: Mapped[str] = mapped_column(String(100))
    from_stage: Mapped[str | None] = mapped_column(String(64))
    to_stage: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(64))
    # Free text: kept here, never put on the stream.
    note: Mapped[str | None] = mapped_column(Text)


class DealContact(Base):
    __tablename__ = "deal_contact"
    __table_args__ = (Index("ix_deal_contact_contact_id", "contact_id"),)

    deal_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("deal.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


class DealCompany(Base):
    __tablename__ = "deal_company"
    __table_args__ = (Index("ix_deal_company_company_id", "company_id"),)

    deal_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("deal.id", ondelete="CASCADE"), primary_key=True
    )
    company_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("company.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
