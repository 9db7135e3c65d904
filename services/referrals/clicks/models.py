import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from services.referrals.db import Base
from shared.db import UTCDateTime, utc_now


class Click(Base):
    """One request to `/r/{code}`. Behavioural data about a visitor: erased with the contact it led to.

    Written behind the response (`clicks.journal`): a click can be in the journal and not yet here.
    """

    __tablename__ = "click"
    __table_args__ = (
        Index("ix_click_affiliate_id_clicked_at", "affiliate_id", "clicked_at"),
        Index("ix_click_program_id_clicked_at", "program_id", "clicked_at"),
        Index("ix_click_link_id_clicked_at", "link_id", "clicked_at"),
        # Attribution's candidates: the same browser's clicks.
        Index("ix_click_visitor_id_clicked_at", "visitor_id", "clicked_at"),
        # Fraud: bursts from one address.
        Index("ix_click_ip_hash_clicked_at", "ip_hash", "clicked_at"),
    )

    # The click id: random, URL-safe, appended to the destination and set as a cookie.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # The first-party visitor cookie, set on the first click and kept: one browser's clicks share it.
    visitor_id: Mapped[str] = mapped_column(String(32))
    link_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    code: Mapped[str] = mapped_column(String(64))
    program_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    affiliate_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    clicked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Keyed HMAC-SHA256 of the client address (`shared.identity`): enough to see a burst, not to find them.
    ip_hash: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    referrer: Mapped[str | None] = mapped_column(String(2048))
    # Where the visitor was sent: the destination with UTM tags and the click id.
    landing_url: Mapped[str] = mapped_column(String(4096))
    # A known crawler or link checker: recorded, never counted or credited.
    is_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set when a conversion names this click with a known contact, so that an erasure finds it.
    contact_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


class ClickJournal(Base):
    """How far the database has applied one click journal file (`clicks.journal`).

    Updated in the transaction that inserts the clicks read up to `applied_offset`, so a crash never
    leaves the position and the rows disagree; a fully applied file of a stopped process is deleted,
    then its row.
    """

    __tablename__ = "click_journal"

    # The journal's file name in the service's data folder (unique per process start).
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    # Bytes of the file applied: the next drain reads from here.
    applied_offset: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
