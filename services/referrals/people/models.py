import uuid

from sqlalchemy import Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from services.referrals.db import Base


class ContactEmail(Base):
    """Each contact's email hashes, as `crm.contact.created` / `updated` carry them (consumer
    `referrals.people`). A postback that names the customer by email is matched to its contact with it,
    and an erasure finds the conversions that named the person only by email."""

    __tablename__ = "contact_email"
    __table_args__ = (Index("ix_contact_email_contact_id", "contact_id"),)

    email_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    contact_id: Mapped[uuid.UUID] = mapped_column(Uuid)
