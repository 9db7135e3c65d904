import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from services.contacts.db import Base
from shared.db import UTCDateTime, utc_now

# JSONB on PostgreSQL (binary, comparable); JSON text on SQLite.
JSONDocument = JSON().with_variant(JSONB(), "postgresql")


class Contact(Base):
    __tablename__ = "contact"
    __table_args__ = (
        # The list's order, newest first (see `repository.NEWEST_FIRST`), read without a sort.
        Index("ix_contact_created_at_id", "created_at", "id"),
        # Standard properties that searches and segments filter on most.
        Index("ix_contact_email", "email"),
        Index("ix_contact_lifecycle_stage_id", "lifecycle_stage", "id"),
        Index("ix_contact_owner_id", "owner", "id"),
        Index("ix_contact_country_id", "country", "id"),
        Index("ix_contact_phone", "phone"),
        Index("ix_contact_mobile_phone", "mobile_phone"),
        Index("ix_contact_last_name_id", "last_name", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # The primary email, lower-cased; it is also an identity (`ContactIdentity`), which keeps it unique.
    email: Mapped[str | None] = mapped_column(String(320))
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    # E.164, e.g. +442071838750.
    phone: Mapped[str | None] = mapped_column(String(50))
    mobile_phone: Mapped[str | None] = mapped_column(String(50))
    street: Mapped[str | None] = mapped_column(String(300))
    city: Mapped[str | None] = mapped_column(String(200))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    state: Mapped[str | None] = mapped_column(String(200))
    # ISO 3166-1 alpha-2, upper case.
    country: Mapped[str | None] = mapped_column(String(2))
    birthday: Mapped[date | None] = mapped_column(Date)
    job_title: Mapped[str | None] = mapped_column(String(200))
    company_name: Mapped[str | None] = mapped_column(String(200))
    owner: Mapped[str | None] = mapped_column(String(200))
    region: Mapped[str | None] = mapped_column(String(100))
    lifecycle_stage: Mapped[str] = mapped_column(String(40))
    source: Mapped[str | None] = mapped_column(String(200))
    # Custom property values by key, as read back; `CustomValue` rows are their searchable copy.
    properties: Mapped[dict[str, Any]] = mapped_column(
        JSONDocument, default=dict, server_default=text("'{}'")
    )
    # The latest consent per purpose and subscription per list, {key: {status, changed_at, source}};
    # every statement is a `ConsentRecord`.
    consents: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict, server_default=text("'{}'"))
    subscriptions: Mapped[dict[str, Any]] = mapped_column(
        JSONDocument, default=dict, server_default=text("'{}'")
    )
    # Fed from the touchpoint stream (`activity.service`): web visits, purchases, and their revenue in
    # the reporting currency (`CRM_REPORTING_CURRENCY`), in minor units.
    visits: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    purchases: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    revenue_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    # Revenue of purchases in other currencies, {ISO 4217 code: minor units}, never converted.
    revenue_by_currency: Mapped[dict[str, int]] = mapped_column(
        JSONDocument, default=dict, server_default=text("'{}'")
    )
    last_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The latest web touchpoint: a page view 30 minutes or more after it starts a new visit.
    last_web_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now, onupdate=utc_now)
    # Set when the person's data was erased: the row stays as a tombstone without personal data.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # One up with every write. As `version_id_col`, every UPDATE says `WHERE version = <the one read>`,
    # so a write based on a stale read changes nothing and fails (StaleDataError) instead of winning.
    # The server default gave rows that existed before versions their first one.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))

    identities: Mapped[list["ContactIdentity"]] = relationship(
        lazy="raise", order_by="ContactIdentity.created_at", passive_deletes=True
    )
    tags: Mapped[list["ContactTag"]] = relationship(
        lazy="raise", order_by="ContactTag.tag", passive_deletes=True
    )

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (read once, by the mapper)

    @property
    def etag(self) -> str:
        """Strong entity tag of this version (why a version and not a hash: `shared.web.etag`)."""
        return f'"{self.version}"'


# Duplicate candidates: colleagues at a company of the same name, whatever its case.
Index("ix_contact_company_name_lower", func.lower(Contact.company_name))


class ContactIdentity(Base):
    """An identifier that names exactly one contact: an email, an id in another system, an anonymous id.

    The primary key makes each unique across all contacts, so claiming one is a single
    `INSERT … ON CONFLICT DO NOTHING` and matching a record (batch upsert, import) is one lookup.
    """

    __tablename__ = "contact_identity"
    __table_args__ = (
        Index("ix_contact_identity_contact_id", "contact_id"),
        Index("ix_contact_identity_canonical", "canonical"),
    )

    # `email`, `anonymous`, or `external:<system>`.
    namespace: Mapped[str] = mapped_column(String(120), primary_key=True)
    value: Mapped[str] = mapped_column(String(320), primary_key=True)
    # Deferred: a batch claims its identities before it inserts the contacts that own them.
    contact_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("contact.id", ondelete="CASCADE", deferrable=True, initially="DEFERRED")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    # For an email, the mailbox it reaches (`matching.canonical_email`): j.doe+news@gmail.com and
    # jdoe@gmail.com differ as identities but point at one person, a duplicate candidate.
    canonical: Mapped[str | None] = mapped_column(String(320))


class ContactTag(Base):
    __tablename__ = "contact_tag"
    __table_args__ = (Index("ix_contact_tag_tag_contact_id", "tag", "contact_id"),)

    contact_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)


class LifecycleTransition(Base):
    """Every move between lifecycle stages, the first one (from nothing) included."""

    __tablename__ = "lifecycle_transition"
    __table_args__ = (Index("ix_lifecycle_transition_contact_id_at", "contact_id", "changed_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    contact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"))
    from_stage: Mapped[str | None] = mapped_column(String(40))
    to_stage: Mapped[str] = mapped_column(String(40))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    # The API key id that made the change, or the consumer's name when the stream did.
    actor: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str | None] = mapped_column(String(500))


class PropertyChange(Base):
    """One field's value before and after one write: the contact's property history."""

    __tablename__ = "contact_property_change"
    __table_args__ = (Index("ix_contact_property_change_contact_id_at", "contact_id", "changed_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    contact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"))
    # A standard field's name, or `properties.<key>` for a custom one.
    property: Mapped[str] = mapped_column(String(140))
    old_value: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    new_value: Mapped[Any] = mapped_column(JSONDocument, nullable=True)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    actor: Mapped[str] = mapped_column(String(120))
    # `api`, `batch`, `import`, `merge`, or a consumer's name.
    source: Mapped[str] = mapped_column(String(60))
