import uuid
from datetime import datetime

from sqlalchemy import Index, Integer, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from services.contacts.db import Base
from shared.db import UTCDateTime, utc_now


class Contact(Base):
    __tablename__ = "contact"
    # The list's order, newest first (see `repository.NEWEST_FIRST`), read without a sort.
    __table_args__ = (Index("ix_contact_created_at_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Stored lower-cased so uniqueness ignores case, as mail servers do in practice.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(50))
    lifecycle_stage: Mapped[str] = mapped_column(String(40))
    source: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now, onupdate=utc_now)
    # One up with every write. As `version_id_col`, every UPDATE says `WHERE version = <the one read>`,
    # so a write based on a stale read changes nothing and fails (StaleDataError) instead of winning.
    # The server default gave rows that existed before versions their first one.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (read once, by the mapper)

    @property
    def etag(self) -> str:
        """Strong entity tag of this version (why a version and not a hash: `shared.web.etag`)."""
        return f'"{self.version}"'
