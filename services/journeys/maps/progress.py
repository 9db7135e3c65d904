"""Moving contacts along journeys as events about them arrive. Flushes, never commits: the changes go
out with the consumer's batch.

Rules of the road:
- A journey version applies to the events made (CloudEvents `time`) from its `active_from` on; events
  from before the journey was defined move no one (no backfill), and a rebuild by replay matches each
  event with the version that was in force for it, as the live consumer did.
- Forward only: an event that matches a stage after the contact's current one moves them there, also
  past stages in between (skipping is allowed; the skipped stages get no history row, since no time for
  them is known). A match of the current or an earlier stage changes nothing.
- A stage is entered at the touchpoint's `occurred_at` (a contact event's time), but never before the
  contact entered the stage they were at: touchpoints may arrive late, and stages follow in time.
- A goal is reached once per stage, by a contact who has entered that stage.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.journeys.db import outbox
from services.journeys.maps.definitions import Definition, Version, definitions
from services.journeys.maps.models import JourneyContactStage, JourneyStageEvent
from services.journeys.maps.repository import ProgressRepository
from services.journeys.maps.rules import Fact, any_matches
from services.journeys.maps.schemas import StageIn
from shared.db import utc_now
from shared.events.envelope import Envelope
from shared.events.journeys import JourneyStageEntered

ENTERED = "entered"
GOAL = "goal"
_HISTORY_IDS = uuid.UUID("0b7c2f8e-52a4-4a8e-9d0c-6f1e8a3b5d21")
_ANNOUNCEMENT_IDS = uuid.UUID("a4e1c9d2-7b3f-4c6a-8e5d-2f9b1c0d7e43")


def history_id(journey_id: uuid.UUID, stage_key: str, kind: str, cause: str) -> uuid.UUID:
    # Derived from the event, so a view rebuilt by replay has the same ids as the live one.
    return uuid.uuid5(_HISTORY_IDS, f"{journey_id}/{stage_key}/{kind}/{cause}")


def announcement_id(journey_id: uuid.UUID, stage_key: str, cause: str) -> str:
    """The CloudEvents id of a stage entry: the same for the same entry caused by the same event, also
    when a rebuild meets it under the survivor of a merge made since."""
    return str(uuid.uuid5(_ANNOUNCEMENT_IDS, f"{journey_id}/{stage_key}/{cause}"))


async def apply(
    session: AsyncSession, envelope: Envelope, *, contact_id: uuid.UUID, fact: Fact, at: datetime
) -> None:
    """Apply one event about `contact_id`, which happened at `at`, to every journey in force for it."""
    journeys = await definitions(session)
    if not journeys:
        return
    repository = ProgressRepository(session)
    if (alias := await repository.alias(contact_id)) is not None:
        if alias.survivor_id is None:
            return  # erased
        contact_id = alias.survivor_id
    current = await repository.current(contact_id)
    for journey in journeys:
        version = journey.in_force(envelope.time)
        if version is None:
            continue
        target = _furthest_match(journey, version, fact)
        state = current.get(journey.journey_id)
        if target is not None and (
            state is None or journey.order[target.key] > journey.order[state.stage_key]
        ):
            current[journey.journey_id] = await _enter(
                repository, envelope, journey, version, target, contact_id, state, at
            )
        await _goals(repository, envelope, journey, version, contact_id, fact, at)
    await session.flush()


def _furthest_match(journey: Definition, version: Version, fact: Fact) -> StageIn | None:
    matched = [stage for stage in version.stages if any_matches(stage.entry, fact)]
    return max(matched, key=lambda stage: journey.order[stage.key], default=None)


async def _enter(
    repository: ProgressRepository,
    envelope: Envelope,
    journey: Definition,
    version: Version,
    stage: StageIn,
    contact_id: uuid.UUID,
    state: JourneyContactStage | None,
    at: datetime,
) -> JourneyContactStage:
    order = journey.order
    here = order[state.stage_key] if state is not None else 0
    entered_at = max(at, state.entered_at) if state is not None else at
    if state is None:
        state = JourneyContactStage(journey_id=journey.journey_id, contact_id=contact_id)
        repository.set_stage(state)
    from_stage = state.stage_key
    state.stage_key, state.entered_at = stage.key, entered_at
    repository.add_history(
        JourneyStageEvent(
            id=history_id(journey.journey_id, stage.key, ENTERED, envelope.id),
            journey_id=journey.journey_id,
            contact_id=contact_id,
            stage_key=stage.key,
            kind=ENTERED,
            at=entered_at,
            cause_event_id=envelope.id,
        )
    )
    event_id = announcement_id(journey.journey_id, stage.key, envelope.id)
    if await repository.announced(event_id):
        return state  # a rebuild meeting an entry announced before
    repository.mark_announced(event_id, utc_now())
    positions = {s.key: position for position, s in enumerate(version.stages, start=1)}
    await outbox.add(
        repository.session,
        JourneyStageEntered(
            contact_id=contact_id,
            journey_id=journey.journey_id,
            journey_key=journey.key,
            journey_version=version.number,
            stage_key=stage.key,
            stage_position=positions[stage.key],
            from_stage_key=from_stage,
            skipped_stage_keys=[s.key for s in version.stages if here < order[s.key] < order[stage.key]],
            entered_at=entered_at,
            cause_event_id=envelope.id,
            cause_event_type=envelope.type,
        ),
        event_id=event_id,
    )
    return state


async def _goals(
    repository: ProgressRepository,
    envelope: Envelope,
    journey: Definition,
    version: Version,
    contact_id: uuid.UUID,
    fact: Fact,
    at: datetime,
) -> None:
    stages = [
        stage for stage in version.stages if stage.goal is not None and any_matches(stage.goal.rules, fact)
    ]
    if not stages:
        return
    await repository.session.flush()  # an entry made by this very event counts
    history = {
        (row.stage_key, row.kind): row
        for row in await repository.history_rows(contact_id)
        if row.journey_id == journey.journey_id
    }
    for stage in stages:
        entry = history.get((stage.key, ENTERED))
        if entry is None or (stage.key, GOAL) in history:
            continue
        repository.add_history(
            JourneyStageEvent(
                id=history_id(journey.journey_id, stage.key, GOAL, envelope.id),
                journey_id=journey.journey_id,
                contact_id=contact_id,
                stage_key=stage.key,
                kind=GOAL,
                at=max(at, entry.at),
                cause_event_id=envelope.id,
            )
        )


async def merge(session: AsyncSession, merged_id: uuid.UUID, survivor_id: uuid.UUID) -> None:
    """The merged contact's stages and history become the survivor's: per journey the further stage is
    kept; of an entry (or goal) both had, the earlier."""
    repository = ProgressRepository(session)
    await repository.set_alias(merged_id, survivor_id)
    orders = {journey.journey_id: journey.order for journey in await definitions(session)}
    kept = await repository.current(survivor_id)
    for journey_id, moved in (await repository.current(merged_id)).items():
        order = orders.get(journey_id, {})
        survivor = kept.get(journey_id)
        if survivor is None:
            repository.set_stage(
                JourneyContactStage(
                    journey_id=journey_id,
                    contact_id=survivor_id,
                    stage_key=moved.stage_key,
                    entered_at=moved.entered_at,
                )
            )
        elif order.get(moved.stage_key, 0) > order.get(survivor.stage_key, 0):
            survivor.stage_key, survivor.entered_at = moved.stage_key, moved.entered_at
        await session.delete(moved)
    theirs = {
        (row.journey_id, row.stage_key, row.kind): row for row in await repository.history_rows(survivor_id)
    }
    for row in await repository.history_rows(merged_id):
        same = theirs.get((row.journey_id, row.stage_key, row.kind))
        if same is None:
            row.contact_id = survivor_id
            continue
        if row.at < same.at:
            same.at, same.cause_event_id = row.at, row.cause_event_id
        await session.delete(row)
    await session.flush()


async def forget(session: AsyncSession, contact_ids: tuple[uuid.UUID, ...]) -> None:
    """Erasure: the people's stages and history go, and events about them that are still on their way
    enter them nowhere."""
    repository = ProgressRepository(session)
    await repository.forget(contact_ids)
    for contact_id in contact_ids:
        await repository.set_alias(contact_id, None)
