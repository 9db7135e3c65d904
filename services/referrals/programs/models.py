import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from services.referrals.db import Base
from shared.db import UTCDateTime, utc_now


class Program(Base):
    """An affiliate or customer-referral program: what a conversion earns, and how it is credited."""

    __tablename__ = "program"
    # The list's order, oldest first.
    __table_args__ = (Index("ix_program_created_at_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # ISO 4217: commissions are paid in it. Minor units everywhere.
    currency: Mapped[str] = mapped_column(String(3))
    # `last_click` (the default) or `first_click`.
    attribution_model: Mapped[str] = mapped_column(String(16))
    # How long after a click a conversion may still be credited to it.
    window_days: Mapped[int] = mapped_column(Integer)
    # How long a commission stays pending before it may be approved (refunds usually come in this time).
    hold_days: Mapped[int] = mapped_column(Integer)
    # `schemas.CommissionRule` as JSON: per goal, fixed, percent, tiers by volume, recurring months.
    commission_rules: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # `schemas.ReferralRewards` as JSON: what each side of a customer referral earns, and when.
    referral_rewards: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Purchases reported to the journeys service count as sales of this program.
    count_purchases: Mapped[bool] = mapped_column(Boolean, default=False)
    # `active` or `archived` (an archived program's links still redirect, and credit nothing new).
    status: Mapped[str] = mapped_column(String(16), default="active")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (read once, by the mapper)

    @property
    def etag(self) -> str:
        return f'"{self.version}"'
