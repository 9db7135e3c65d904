import uuid
from datetime import datetime

from sqlalchemy import Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from services.journeys.db import Base
from shared.db import UTCDateTime, utc_now


class ContactIdentityLink(Base):
    """What journeys knows of who is who: an identifier and the contact it names.

    Built from the stream (the contacts events' `email_hashes`, merges), so no call to another service
    is needed to resolve a touchpoint; emptied and rebuilt by `crm replay` like the timeline. Kinds
    (`service.Kind`): an email's keyed hash, an external id (`<system>:<id>`), an anonymous id, and the
    id of a contact merged into another, which names the survivor.
    """

    __tablename__ = "contact_identity_link"
    __table_args__ = (Index("ix_contact_identity_link_contact_id", "contact_id"),)

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    value: Mapped[str] = mapped_column(String(320), primary_key=True)
    contact_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
