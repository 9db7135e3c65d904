import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from services.journeys.db import Base
from shared.db import UTCDateTime, utc_now


class TimelineEntry(Base):
    __tablename__ = "timeline_entry"
    __table_args__ = (
        Index("ix_timeline_entry_contact_time", "contact_id", "occurred_at", "id"),
        # One per filter: a filtered page is an equality on the first two columns and then the same
        # keyset walk as an unfiltered one, served in order by the index.
        Index("ix_timeline_entry_contact_team_time", "contact_id", "team", "occurred_at", "id"),
        Index("ix_timeline_entry_contact_channel_time", "contact_id", "channel", "occurred_at", "id"),
        Index("ix_timeline_entry_contact_kind_time", "contact_id", "kind", "occurred_at", "id"),
        # An event appears once per contact: most are about one contact, a deal's move is on each of
        # the deal's contacts' timelines.
        UniqueConstraint("event_id", "contact_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    contact_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # The CloudEvents id of the event this entry came from.
    event_id: Mapped[str] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(200))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # What the timeline's filters match, as columns rather than inside `properties`, so they are indexed.
    team: Mapped[str | None] = mapped_column(String(16))
    """`marketing`, `sales`, `service` or `partner`; null when the event names no team."""
    channel: Mapped[str | None] = mapped_column(String(32))
    """A touchpoint's channel; null for entries that are not touchpoints."""
    kind: Mapped[str] = mapped_column(String(200))
    """A touchpoint's own type (`page_view`); for any other entry, its event type."""
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


TIMELINE_ENTRY = TimelineEntry.metadata.tables[TimelineEntry.__tablename__]


class TimelineDealContact(Base):
    """A deal's contacts, as the timeline's consumer learnt them from `crm.deals` (every deal event
    names them) and `crm.contacts` (merges repoint them, erasures remove them): whose timelines a deal's
    move goes on. Ids only."""

    __tablename__ = "timeline_deal_contact"
    __table_args__ = (Index("ix_timeline_deal_contact_contact_id", "contact_id"),)

    deal_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    contact_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)


class TimelineContactAlias(Base):
    """Contacts that are no more, as the timeline's consumer learnt: merged into `survivor_id`, or erased
    (null). A deal event on `crm.deals` may still name them after the merge or erasure on `crm.contacts`
    was applied (two topics, no set order); its move goes to the survivor, or nowhere. Keyed by an id
    derived from the contact id (`repository.alias_ref`), so an erased person's id is not kept."""

    __tablename__ = "timeline_contact_alias"
    __table_args__ = (Index("ix_timeline_contact_alias_survivor_id", "survivor_id"),)

    contact_ref: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    survivor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class TimelineReferralClick(Base):
    """Clicks on referral links, as the timeline's consumer learnt them from `crm.referrals` (bots left
    out). A click is nobody's until a conversion names it with a contact; then it joins that contact's
    timeline at the time it happened, as the entry of its own `crm.click.recorded`."""

    __tablename__ = "timeline_referral_click"
    __table_args__ = (Index("ix_timeline_referral_click_contact_id", "contact_id"),)

    click_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36))
    event_source: Mapped[str] = mapped_column(String(200))
    clicked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    link_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    code: Mapped[str] = mapped_column(String(64))
    program_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    affiliate_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # Set once a conversion of a known contact named it; erased with that contact.
    contact_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class TimelineReferralConversion(Base):
    """Whose each conversion is, as `crm.conversion.recorded` named them (the survivor after a merge):
    the conversion's later events (a status, commissions, rewards) go on that contact's timeline."""

    __tablename__ = "timeline_referral_conversion"
    __table_args__ = (Index("ix_timeline_referral_conversion_contact_id", "contact_id"),)

    conversion_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    contact_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    click_id: Mapped[str | None] = mapped_column(String(32))
