import uuid
from datetime import datetime

from sqlalchemy import Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from services.referrals.db import Base
from shared.db import UTCDateTime, utc_now


class Affiliate(Base):
    """Someone who is paid for the customers they bring: a partner, or a customer who refers others.

    An affiliate promotes any program through its links. Its API keys (`shared.auth`, bound to its id)
    see only its own data, under `/v1/me`.
    """

    __tablename__ = "affiliate"
    __table_args__ = (
        Index("ix_affiliate_created_at_id", "created_at", "id"),
        # Self-referral: is the buyer the referrer?
        Index("ix_affiliate_contact_id", "contact_id"),
        Index("ix_affiliate_email_hash", "email_hash"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # `partner` or `customer` (a customer who refers is paid referral rewards, not only commissions).
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    # Where payouts and notices go; personal for a customer, so erased with the contact.
    email: Mapped[str | None] = mapped_column(String(320))
    # Keyed HMAC-SHA256 of `email` (`shared.identity`), compared with the buyer's on each conversion.
    email_hash: Mapped[str | None] = mapped_column(String(64))
    # The contact this affiliate is, for a customer who refers (and a partner who is also a contact).
    contact_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # `active` or `suspended` (a suspended affiliate's links still redirect and credit nothing).
    status: Mapped[str] = mapped_column(String(16), default="active")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (read once, by the mapper)

    @property
    def etag(self) -> str:
        return f'"{self.version}"'
