import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from services.referrals.db import Base
from shared.db import UTCDateTime, utc_now


class Commission(Base):
    """What a conversion earns one payee: the affiliate's commission, or one side's referral reward.

    Its amount never changes: every change to it (approval, payment, reversal, clawback) is a new row in
    `commission_ledger`, and the balance owed is the ledger's sum.
    """

    __tablename__ = "commission"
    __table_args__ = (
        # One commission of each kind per conversion: a replayed or retried conversion earns nothing twice.
        UniqueConstraint("conversion_id", "kind"),
        Index("ix_commission_affiliate_id_created_at", "affiliate_id", "created_at"),
        Index("ix_commission_status_hold_until", "status", "hold_until"),
        Index("ix_commission_created_at_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    conversion_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("conversion.id"))
    program_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # `commission`, `referrer_reward`, `referee_reward`.
    kind: Mapped[str] = mapped_column(String(16))
    # The payee: an affiliate, or (a referee reward) a contact who may be no affiliate at all.
    affiliate_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    contact_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # The rule that set the amount, e.g. `sale:percent:10`, `sale:tier:2`, `sale:fixed:900+recurring:3/12`:
    # a goal of up to 64 characters with its amount and recurring month fits in 120.
    rule: Mapped[str] = mapped_column(String(120))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # `pending`, `held` (its conversion waits for a fraud review), `approved`, `paid`, `reversed`.
    status: Mapped[str] = mapped_column(String(16))
    hold_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    payout_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (read once, by the mapper)


class CommissionLedgerEntry(Base):
    """One change to a commission, append-only: `earned` (plus the amount), `released` (zero: a review
    approved its held conversion), `approved` and `paid` (zero, a status change on the record),
    `reversed` (minus the amount, before payment), `clawback` (minus the amount after payment: owed back),
    `deducted` (zero: a payout, named by `payout_id`, took the clawback back). A clawback without a
    `deducted` entry is still owed, and the next payout deducts it."""

    __tablename__ = "commission_ledger"
    __table_args__ = (
        Index("ix_commission_ledger_commission_id", "commission_id"),
        Index("ix_commission_ledger_affiliate_id_at", "affiliate_id", "at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    commission_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("commission.id"))
    affiliate_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    entry: Mapped[str] = mapped_column(String(16))
    # Signed minor units of `currency`.
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(String(200))
    payout_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


class Payout(Base):
    """Money sent to an affiliate: the approved commissions it covers, less clawbacks owed."""

    __tablename__ = "payout"
    __table_args__ = (Index("ix_payout_affiliate_id_paid_at", "affiliate_id", "paid_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    affiliate_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # What was sent: `commissions_amount` less `clawbacks_amount`, never below zero.
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    commission_count: Mapped[int] = mapped_column(Integer)
    # The approved commissions it covers, and the clawbacks owed that it deducted (a positive sum).
    commissions_amount: Mapped[int] = mapped_column(BigInteger)
    clawbacks_amount: Mapped[int] = mapped_column(BigInteger)
    # The payer's reference (a bank transfer id, a PayPal batch id).
    reference: Mapped[str | None] = mapped_column(String(200))
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
