"""A journey's versions as the consumer uses them: which version is in force for an event, and where
each stage stands in the journey."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession

from services.journeys.maps.repository import JourneyRepository
from services.journeys.maps.schemas import StageIn

_STAGES = TypeAdapter(list[StageIn])
_CACHE = "crm_journey_definitions"


def parse_stages(stored: list[dict[str, Any]]) -> list[StageIn]:
    return _STAGES.validate_python(stored)


@dataclass(frozen=True)
class Version:
    number: int
    active_from: datetime
    stages: Sequence[StageIn]


@dataclass(frozen=True)
class Definition:
    journey_id: uuid.UUID
    key: str
    versions: Sequence[Version]
    """Oldest first."""

    @property
    def order(self) -> dict[str, int]:
        """Each stage key's place, 1 for the first, in the latest version: it holds every key any
        version had, in the same order (a change may add stages, never drop or reorder them)."""
        return {stage.key: position for position, stage in enumerate(self.versions[-1].stages, start=1)}

    def in_force(self, at: datetime) -> Version | None:
        """The version that applied at `at`; None before the journey was defined."""
        found = None
        for version in self.versions:
            if version.active_from <= at:
                found = version
        return found


async def definitions(session: AsyncSession) -> list[Definition]:
    """Every journey with its versions; read once per transaction (a consumer's batch)."""
    cached: list[Definition] | None = session.info.get(_CACHE)
    if cached is not None:
        return cached
    grouped: dict[uuid.UUID, tuple[str, list[Version]]] = {}
    for journey, version in await JourneyRepository(session).all_versions():
        _, versions = grouped.setdefault(journey.id, (journey.key, []))
        versions.append(Version(version.version, version.active_from, parse_stages(version.stages)))
    found = [Definition(journey_id, key, versions) for journey_id, (key, versions) in grouped.items()]
    session.info[_CACHE] = found
    return found
