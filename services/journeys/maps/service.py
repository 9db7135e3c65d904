"""Defining journeys, and reading where contacts stand on them. Flushes, never commits.

A journey's definition is versioned: every change is a new version that applies to events from then
on (`definitions.Definition.in_force`), and the versions are kept, so the view can be rebuilt by replay
exactly as it was built live. A change may rename the journey and its stages and change their rules and
goals, and may add stages; it may not drop or reorder stages, which history and events refer to.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from services.journeys.maps.definitions import parse_stages
from services.journeys.maps.funnel import funnel
from services.journeys.maps.models import Journey, JourneyVersion
from services.journeys.maps.repository import JourneyRepository, ProgressRepository
from services.journeys.maps.schemas import (
    ContactJourneyStage,
    Funnel,
    JourneyCreate,
    JourneyPatch,
    StageIn,
)
from shared.db import utc_now
from shared.errors import AlreadyExists, InvalidValue, NotFound, StaleVersion
from shared.pagination import PageRequest, Slice


class JourneyNotFound(NotFound):
    def __init__(self, key: str) -> None:
        super().__init__("Journey", key)
        self.detail = f"No journey with key {key}."


def _key_taken(key: str, holder: object) -> AlreadyExists:
    return AlreadyExists(f"A journey with key {key} already exists.", existing_id=holder)


def _stored(stages: Sequence[StageIn]) -> list[dict[str, object]]:
    return [stage.model_dump(mode="json", exclude_none=True) for stage in stages]


async def create_journey(session: AsyncSession, data: JourneyCreate) -> Journey:
    repository = JourneyRepository(session)
    if (holder := await repository.by_key(data.key)) is not None:
        raise _key_taken(data.key, holder.id)
    now = utc_now()
    journey = Journey(
        id=uuid.uuid4(),
        key=data.key,
        name=data.name,
        stages=_stored(data.stages),
        active_from=now,
        created_at=now,
        updated_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(journey)
            await session.flush()
            session.add(
                JourneyVersion(journey_id=journey.id, version=1, stages=journey.stages, active_from=now)
            )
            await session.flush()
    except IntegrityError:
        holder = await repository.by_key(data.key)
        raise _key_taken(data.key, holder.id if holder else "unknown") from None
    return journey


async def get_journey(session: AsyncSession, key: str) -> Journey:
    journey = await JourneyRepository(session).by_key(key)
    if journey is None:
        raise JourneyNotFound(key)
    return journey


async def list_journeys(session: AsyncSession, page: PageRequest) -> Slice[Journey]:
    return await JourneyRepository(session).page(page)


def _check_kept(current: Sequence[StageIn], wanted: Sequence[StageIn]) -> None:
    old = [stage.key for stage in current]
    kept = [stage.key for stage in wanted if stage.key in old]
    if missing := [key for key in old if key not in kept]:
        raise InvalidValue(
            "stages",
            f"Stages cannot be removed (history refers to them): {', '.join(missing)}. Delete the journey "
            "and define a new one instead.",
        )
    if kept != old:
        raise InvalidValue(
            "stages",
            f"The current stages must keep their order ({', '.join(old)}); new ones may go anywhere.",
        )


async def update_journey(
    session: AsyncSession, key: str, patch: JourneyPatch, *, if_match: Collection[str] | None = None
) -> Journey:
    """Rename the journey and/or give its stages anew; a change makes a new version, in force from now."""
    journey = await get_journey(session, key)
    if if_match is not None and journey.etag not in if_match:
        raise StaleVersion("Journey", key, current=journey.etag)
    stages = journey.stages
    if patch.stages is not None:
        _check_kept(parse_stages(journey.stages), patch.stages)
        stages = _stored(patch.stages)
    name = patch.name if patch.name is not None else journey.name
    if name == journey.name and stages == journey.stages:
        return journey
    now = utc_now()
    try:
        async with session.begin_nested():
            journey.name, journey.stages, journey.updated_at, journey.active_from = name, stages, now, now
            await session.flush()  # the version column goes up, checked against the one read
            session.add(
                JourneyVersion(journey_id=journey.id, version=journey.version, stages=stages, active_from=now)
            )
            await session.flush()
    except (StaleDataError, IntegrityError):
        fresh = await JourneyRepository(session).by_key(key, fresh=True)
        raise StaleVersion("Journey", key, current=fresh.etag if fresh else '"0"') from None
    return journey


async def delete_journey(session: AsyncSession, key: str) -> None:
    """The definition, its versions, and every contact's stage and history on it."""
    await JourneyRepository(session).delete(await get_journey(session, key))


async def contact_journeys(session: AsyncSession, contact_id: uuid.UUID) -> list[ContactJourneyStage]:
    """The contact's current stage per journey, by journey key."""
    current = await ProgressRepository(session).current(contact_id)
    journeys = await JourneyRepository(session).by_ids(current.keys())
    found = []
    for journey_id, state in current.items():
        journey = journeys[journey_id]
        stages = parse_stages(journey.stages)
        position, stage = next((p, s) for p, s in enumerate(stages, start=1) if s.key == state.stage_key)
        found.append(
            ContactJourneyStage(
                journey_key=journey.key,
                journey_name=journey.name,
                stage_key=stage.key,
                stage_name=stage.name,
                position=position,
                entered_at=state.entered_at,
            )
        )
    return sorted(found, key=lambda item: item.journey_key)


async def journey_funnel(
    session: AsyncSession, key: str, since: datetime | None, until: datetime | None
) -> Funnel:
    """The funnel of the journey's current stages over entries in [since, until)."""
    if since is not None and until is not None and until <= since:
        raise InvalidValue("until", "`until` must be after `since`.")
    journey = await get_journey(session, key)
    stages = await funnel(session, journey.id, parse_stages(journey.stages), since, until)
    return Funnel(journey_key=journey.key, since=since, until=until, stages=stages)
