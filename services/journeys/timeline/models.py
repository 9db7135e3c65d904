import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from services.journeys.db import Base
from shared.db import UTCDateTime, utc_now


class TimelineEntry(Base):
    __tablename__ = "timeline_entry"
    __table_args__ = (Index("ix_timeline_entry_contact_time", "contact_id", "occurred_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    contact_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # The CloudEvents id of the event this entry came from; unique, so an event appears once.
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    event_type: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(200))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


TIMELINE_ENTRY = TimelineEntry.metadata.tables[TimelineEntry.__tablename__]
