import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from services.contacts.db import Base
from shared.db import UTCDateTime, utc_now


class StageKind(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class PipelineStage(Base):
    """One stage of a pipeline. Its key never changes: deals refer to it (`deal.stage`)."""

    __tablename__ = "pipeline_stage"

    pipeline_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("pipeline.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)
    probability: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))


class Pipeline(Base):
    __tablename__ = "pipeline"
    # The list's order, oldest first (`repository.OLDEST_FIRST`): the default pipeline comes first.
    __table_args__ = (Index("ix_pipeline_created_at_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now, onupdate=utc_now)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # Loaded on purpose only (`repository`): `lazy="raise"` turns a forgotten load into an error.
    stages: Mapped[list[PipelineStage]] = relationship(
        order_by=PipelineStage.position, cascade="all, delete-orphan", lazy="raise"
    )

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (read once, by the mapper)

    @property
    def etag(self) -> str:
        return f'"{self.version}"'

    def stage(self, key: str) -> PipelineStage | None:
        return next((stage for stage in self.stages if stage.key == key), None)
