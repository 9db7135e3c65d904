import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Double, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from services.journeys.db import Base
from shared.db import UTCDateTime, utc_now


class Touchpoint(Base):
    """One contact a prospect had with the business. Behavioural data about a person: erased with them.

    Who it was is kept as given, beside the contact it was resolved to: the anonymous id, the external
    id, and of an email only its keyed hash (`shared.identity`), never the address.
    """

    __tablename__ = "touchpoint"
    __table_args__ = (
        # A contact's touchpoints in time order; also what an erasure or a merge looks up.
        Index("ix_touchpoint_contact_id_occurred_at_id", "contact_id", "occurred_at", "id"),
        # The identifiers an erasure follows to unresolved touchpoints of the same person.
        Index("ix_touchpoint_anonymous_id", "anonymous_id"),
        Index("ix_touchpoint_email_hash", "email_hash"),
        Index("ix_touchpoint_external_system_external_id", "external_system", "external_id"),
        # The sender's id of the message: a repeat is the same touchpoint (NULLs never clash).
        Index("uq_touchpoint_message_id", "message_id", unique=True),
        # A content id's or a campaign's touchpoints in a period (`performance`).
        Index("ix_touchpoint_content_id_occurred_at", "content_id", "occurred_at"),
        Index("ix_touchpoint_campaign_occurred_at", "campaign", "occurred_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # The CloudEvents id of its `crm.touchpoint.recorded`: a timeline entry made when the touchpoint is
    # stitched to its contact later carries it, so the event and the stitching make one entry, not two.
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(200))
    # Null while the person is unknown (unresolved touchpoints are kept, never dropped).
    contact_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    anonymous_id: Mapped[str | None] = mapped_column(String(200))
    # HMAC-SHA256 (hex) of the email the sender named, as contacts events carry them.
    email_hash: Mapped[str | None] = mapped_column(String(64))
    external_system: Mapped[str | None] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(200))
    # `schemas.Channel`, `schemas.Stage`, `schemas.Team`: codes, checked at the edge.
    channel: Mapped[str] = mapped_column(String(32))
    type: Mapped[str] = mapped_column(String(100))
    stage: Mapped[str | None] = mapped_column(String(32))
    team: Mapped[str | None] = mapped_column(String(16))
    campaign: Mapped[str | None] = mapped_column(String(200))
    content_id: Mapped[str | None] = mapped_column(String(200))
    utm_source: Mapped[str | None] = mapped_column(String(200))
    utm_medium: Mapped[str | None] = mapped_column(String(200))
    utm_campaign: Mapped[str | None] = mapped_column(String(200))
    utm_term: Mapped[str | None] = mapped_column(String(200))
    utm_content: Mapped[str | None] = mapped_column(String(200))
    # Anything else the sender wants kept; never put on the stream.
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Minor units of `currency`.
    revenue: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    order_id: Mapped[str | None] = mapped_column(String(200))
    score: Mapped[float | None] = mapped_column(Double)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    # The API key that recorded it: whose system said so (a marketing tool, a sales app).
    actor: Mapped[str] = mapped_column(String(120))
