import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from services.contacts.db import Base
from shared.db import UTCDateTime, utc_now


class ErasureReceipt(Base):
    """The answer to an erasure request, to follow each service's confirmation. It names the contact by
    id only: the person's data is gone by the time anyone reads it."""

    __tablename__ = "erasure_receipt"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    contact_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    actor: Mapped[str] = mapped_column(String(120))


class ErasureConfirmation(Base):
    __tablename__ = "erasure_confirmation"

    receipt_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("erasure_receipt.id", ondelete="CASCADE"), primary_key=True
    )
    service: Mapped[str] = mapped_column(String(40), primary_key=True)
    confirmed_at: Mapped[datetime] = mapped_column(UTCDateTime())
