import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from services.journeys.db import Base
from shared.db import UTCDateTime, utc_now


class Journey(Base):
    """A journey's definition as it is now; each version of it is kept in `journey_version`."""

    __tablename__ = "journey"
    # The list's order, oldest first (`repository.OLDEST_FIRST`).
    __table_args__ = (Index("ix_journey_created_at_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # `schemas.StageIn` as JSON, in order.
    stages: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=1)
    active_from: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (read once, by the mapper)

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


class JourneyVersion(Base):
    """Every version of a journey's stages and the time it began to apply. The consumer matches an
    event with the version in force when the event was made, so a rebuild by replay matches as the live
    consumer did, whatever changed since."""

    __tablename__ = "journey_version"

    journey_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("journey.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    stages: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    active_from: Mapped[datetime] = mapped_column(UTCDateTime())


class JourneyContactStage(Base):
    """Each contact's current stage per journey. Built from the stream (consumer `journeys.maps`)."""

    __tablename__ = "journey_contact_stage"
    __table_args__ = (Index("ix_journey_contact_stage_contact_id", "contact_id"),)

    journey_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("journey.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    stage_key: Mapped[str] = mapped_column(String(64))
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime())


class JourneyStageEvent(Base):
    """History: a contact entered a stage (`kind` `entered`) or reached its goal (`goal`), at `at`.
    Once per contact, stage and kind. Built from the stream (consumer `journeys.maps`)."""

    __tablename__ = "journey_stage_event"
    __table_args__ = (
        UniqueConstraint("journey_id", "contact_id", "stage_key", "kind"),
        # The funnel's scan: one journey's entries in a time range.
        Index("ix_journey_stage_event_journey_id_kind_at", "journey_id", "kind", "at"),
        Index("ix_journey_stage_event_contact_id", "contact_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    journey_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("journey.id", ondelete="CASCADE"))
    contact_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    stage_key: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(10))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The CloudEvents id of the event that matched.
    cause_event_id: Mapped[str] = mapped_column(String(36))


class JourneyAnnouncement(Base):
    """The ids of the `crm.journey.stage_entered` events announced so far. Not part of the view: kept
    through `crm replay`, so a rebuild that meets a stage entry again announces it no second time. Ids
    only (derived from the journey, the stage and the causing event), so an erasure leaves them."""

    __tablename__ = "journey_announcement"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    announced_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


class JourneyContactAlias(Base):
    """Contacts that are no more, as this consumer learnt: merged into `survivor_id`, or erased (null).
    Events about them can still arrive from another topic, or by way of a touchpoint the timeline's
    consumer has not moved or deleted yet; they go to the survivor, or nowhere. Keyed by an id derived
    from the contact id (`repository.alias_ref`), so an erased person's id is not kept: an event naming
    it still finds the row. Built from the stream (consumer `journeys.maps`)."""

    __tablename__ = "journey_contact_alias"
    __table_args__ = (Index("ix_journey_contact_alias_survivor_id", "survivor_id"),)

    contact_ref: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    survivor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
