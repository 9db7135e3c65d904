import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from services.contacts.contacts.models import JSONDocument
from services.contacts.db import Base
from shared.db import UTCDateTime, utc_now


class ConsentRecord(Base):
    """One statement of consent or of a subscription, as given: never changed, never deleted but by
    erasure. The contact's current state per purpose and list is the latest record (kept on the
    contact row as well, for reads)."""

    __tablename__ = "consent_record"
    __table_args__ = (Index("ix_consent_record_contact_id_at", "contact_id", "recorded_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    contact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"))
    # `consent` (for a purpose) or `subscription` (to a mailing list).
    kind: Mapped[str] = mapped_column(String(20))
    # The purpose, or the list's key.
    subject: Mapped[str] = mapped_column(String(64))
    # granted / withdrawn for a consent; subscribed / unsubscribed for a list.
    status: Mapped[str] = mapped_column(String(20))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    # Where it was given, e.g. `signup_form`, `checkout`, `support_call`.
    source: Mapped[str] = mapped_column(String(100))
    # How it was given: the wording shown, the form or document, the page, the address it came from.
    proof: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    actor: Mapped[str] = mapped_column(String(120))
