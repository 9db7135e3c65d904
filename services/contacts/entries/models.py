import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from services.contacts.db import Base
from shared.db import UTCDateTime, utc_now


class ContactEntry(Base):
    """A note, review, rating, feedback or suggestion about a contact: qualitative data, personal data
    too (free text names people), so erasure deletes it with the contact's other records."""

    __tablename__ = "contact_entry"
    __table_args__ = (
        # A contact's entries, newest first (`repository.NEWEST_FIRST`), read without a sort; also the
        # erasure's delete and the summary's scan.
        Index("ix_contact_entry_contact_id_occurred_at_id", "contact_id", "occurred_at", "id"),
        # The service checks the range per scale; the database at least never holds half a score.
        CheckConstraint("(score IS NULL) = (scale IS NULL)", name="score_with_scale"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    contact_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("contact.id", ondelete="CASCADE"))
    # note / review / rating / feedback / suggestion (`schemas.EntryKind`); fixed once recorded.
    kind: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str | None] = mapped_column(String(300))
    body: Mapped[str | None] = mapped_column(Text)
    score: Mapped[int | None] = mapped_column(Integer)
    # five_star / csat / nps / ces / thumbs (`schemas.Scale`), which bounds `score`.
    scale: Mapped[str | None] = mapped_column(String(20))
    # A code for where it came from, e.g. `survey`, `support_ticket`, `app_store`.
    channel: Mapped[str | None] = mapped_column(String(64))
    # What it is about, in this or another system: a deal (checked), a ticket, an order.
    reference_type: Mapped[str | None] = mapped_column(String(32))
    reference_id: Mapped[str | None] = mapped_column(String(200))
    # The user who wrote or took it (e.g. a support agent's id), as the caller names them.
    author: Mapped[str | None] = mapped_column(String(100))
    # The API key that recorded it.
    actor: Mapped[str] = mapped_column(String(120))
    # When the person gave it (an imported review keeps its own date); the list's order.
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now, onupdate=utc_now)
    # As `Contact.version`: every UPDATE checks it, and it is the entry's `ETag`.
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (read once, by the mapper)

    @property
    def etag(self) -> str:
        return f'"{self.version}"'
