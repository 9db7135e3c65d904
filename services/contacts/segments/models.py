import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from services.contacts.contacts.models import JSONDocument
from services.contacts.db import Base
from shared.db import UTCDateTime, utc_now


class Segment(Base):
    """A saved search of contacts: its members are whoever matches the filter when it is read."""

    __tablename__ = "segment"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    # The filter as the search language writes it (`services.contacts.search.schemas.Filter`).
    filter: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now, onupdate=utc_now)
