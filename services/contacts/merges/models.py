import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from services.contacts.contacts.models import JSONDocument
from services.contacts.db import Base
from shared.db import UTCDateTime, utc_now


class ContactMerge(Base):
    """One merge, kept so that "why is this one record?" has an answer: which contact was merged into
    which, by whom and why, where each field's value came from, and the merged contact as it was.

    The merged contact's row is gone after the merge; its id stays here, so reads of it can be sent to
    the survivor.
    """

    __tablename__ = "contact_merge"
    __table_args__ = (
        Index("ix_contact_merge_survivor_id_merged_at", "survivor_id", "merged_at", "id"),
        Index("uq_contact_merge_merged_id", "merged_id", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # No foreign keys: both ids outlive the rows (the merged one at once, the survivor when erased).
    survivor_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    merged_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    merged_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    actor: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str | None] = mapped_column(String(500))
    # [{field, chosen, rule}]: which side each field's value came from, and by which rule. No values.
    decisions: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument, default=list)
    # The duplicate-candidate reasons that held for the pair when they were merged (empty if none did).
    matched: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument, default=list)
    # How many rows of each kind moved to the survivor: history, transitions, consents, associations.
    moved: Mapped[dict[str, int]] = mapped_column(JSONDocument, default=dict)
    # The merged contact as it read just before the merge: personal data, so erased with the survivor.
    merged_snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument, nullable=True)
