import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from services.referrals.db import Base
from shared.db import UTCDateTime, utc_now


class Link(Base):
    """A tracking link: `/r/{code}` records a click and redirects to `destination_url` with UTM tags and
    the click id. A customer's referral code is a link code too."""

    __tablename__ = "link"
    __table_args__ = (
        Index("ix_link_created_at_id", "created_at", "id"),
        Index("ix_link_affiliate_id_created_at", "affiliate_id", "created_at"),
        Index("ix_link_program_id", "program_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    destination_url: Mapped[str] = mapped_column(String(2048))
    utm_source: Mapped[str | None] = mapped_column(String(200))
    utm_medium: Mapped[str | None] = mapped_column(String(200))
    utm_campaign: Mapped[str | None] = mapped_column(String(200))
    utm_term: Mapped[str | None] = mapped_column(String(200))
    utm_content: Mapped[str | None] = mapped_column(String(200))
    program_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("program.id"))
    affiliate_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("affiliate.id"))
    # Archived links still redirect (printed links live for ever) and record clicks; they credit nothing.
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (read once, by the mapper)

    @property
    def etag(self) -> str:
        return f'"{self.version}"'
