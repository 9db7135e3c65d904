import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from services.contacts.contacts.models import JSONDocument
from services.contacts.db import Base
from shared.db import UTCDateTime, utc_now


class Company(Base):
    __tablename__ = "company"
    # The list's order, newest first (see `repository.NEWEST_FIRST`), read without a sort.
    __table_args__ = (Index("ix_company_created_at_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(300))
    # A host name, stored normalised (lower case, no scheme, path or `www.`), so uniqueness is real.
    domain: Mapped[str | None] = mapped_column(String(253), unique=True)
    industry: Mapped[str | None] = mapped_column(String(100))
    employee_count: Mapped[int | None] = mapped_column(Integer)
    # Minor units of `currency`, so no float ever rounds money.
    annual_revenue: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    country: Mapped[str | None] = mapped_column(String(2))
    region: Mapped[str | None] = mapped_column(String(100))
    owner: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(50))
    # Custom property values by key, as read back; `CustomValue` rows are their searchable copy.
    properties: Mapped[dict[str, Any]] = mapped_column(
        JSONDocument, default=dict, server_default=text("'{}'")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now, onupdate=utc_now)
    # As `Contact.version`: every UPDATE checks it, so a write based on a stale read fails.
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (read once, by the mapper)

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


class CompanyContact(Base):
    """A contact associated with a company; made and removed idempotently."""

    __tablename__ = "company_contact"
    __table_args__ = (
        # A company's contacts in the order they were associated (`repository.ASSOCIATED_FIRST`).
        Index(
            "ix_company_contact_company_id_created_at_contact_id", "company_id", "created_at", "contact_id"
        ),
        # A contact's companies, and the cascade when a contact goes.
        Index("ix_company_contact_contact_id", "contact_id"),
    )

    company_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("company.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
