"""Business rules for pipelines. Flushes, never commits: the caller's session scope commits."""

import uuid
from collections.abc import Collection, Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from services.contacts.pipelines.models import Pipeline, PipelineStage
from services.contacts.pipelines.repository import PipelineRepository
from services.contacts.pipelines.schemas import PipelineCreate, PipelinePatch, StageIn
from shared.db import utc_now
from shared.errors import AlreadyExists, InUse, NotFound, StaleVersion
from shared.pagination import PageRequest, Slice

_UPDATE_ATTEMPTS = 5


class PipelineNotFound(NotFound):
    def __init__(self, pipeline_id: uuid.UUID) -> None:
        super().__init__("Pipeline", pipeline_id)


def _key_taken(key: str, holder: object) -> AlreadyExists:
    return AlreadyExists(f"A pipeline with key {key} already exists.", existing_id=holder)


def _stage(position: int, data: StageIn) -> PipelineStage:
    return PipelineStage(
        key=data.key,
        label=data.label,
        position=position,
        probability=data.probability,
        kind=data.kind.value,
    )


async def create_pipeline(session: AsyncSession, data: PipelineCreate) -> Pipeline:
    repository = PipelineRepository(session)
    if (holder := await repository.id_by_key(data.key)) is not None:
        raise _key_taken(data.key, holder)
    pipeline = Pipeline(
        key=data.key,
        name=data.name,
        stages=[_stage(position, stage) for position, stage in enumerate(data.stages, start=1)],
    )
    try:
        async with session.begin_nested():
            session.add(pipeline)
            await session.flush()
    except IntegrityError:
        raise _key_taken(data.key, await repository.id_by_key(data.key) or "unknown") from None
    return pipeline


async def get_pipeline(session: AsyncSession, pipeline_id: uuid.UUID) -> Pipeline:
    pipeline = await PipelineRepository(session).get(pipeline_id)
    if pipeline is None:
        raise PipelineNotFound(pipeline_id)
    return pipeline


async def list_pipelines(session: AsyncSession, page: PageRequest) -> Slice[Pipeline]:
    """Oldest first: the default `sales` pipeline leads."""
    return await PipelineRepository(session).page(page)


async def update_pipeline(
    session: AsyncSession,
    pipeline_id: uuid.UUID,
    patch: PipelinePatch,
    *,
    if_match: Collection[str] | None = None,
) -> Pipeline:
    """Rename the pipeline and/or make its stages the given list.

    A stage left out is removed, and a stage whose kind changes must hold no deal: either while deals
    are in it is `InUse` (their stage would vanish, or a closed deal would sit in an open stage).
    """
    repository = PipelineRepository(session)
    for attempt in range(_UPDATE_ATTEMPTS):
        pipeline = await repository.get(pipeline_id, fresh=attempt > 0)
        if pipeline is None:
            raise PipelineNotFound(pipeline_id)
        if if_match is not None and pipeline.etag not in if_match:
            raise StaleVersion("Pipeline", pipeline_id, current=pipeline.etag)
        rename = patch.name is not None and patch.name != pipeline.name
        wanted = patch.stages
        if wanted is not None:
            await _check_stages_free(repository, pipeline, wanted)
        if not rename and (wanted is None or _same_stages(pipeline, wanted)):
            return pipeline
        try:
            async with session.begin_nested():
                if rename:
                    assert patch.name is not None
                    pipeline.name = patch.name
                if wanted is not None:
                    _replace_stages(pipeline, wanted)
                pipeline.updated_at = utc_now()  # a new version, also when only stages changed
                await session.flush()
        except StaleDataError:
            continue
        except IntegrityError:
            # A deal went into a stage being removed after the check above: the foreign key refuses.
            raise InUse(
                "A deal entered a stage this change removes; read the pipeline and try again."
            ) from None
        return pipeline
    assert pipeline is not None
    raise StaleVersion("Pipeline", pipeline_id, current=pipeline.etag)


async def _check_stages_free(
    repository: PipelineRepository, pipeline: Pipeline, wanted: Sequence[StageIn]
) -> None:
    kinds = {stage.key: stage.kind for stage in wanted}
    touched = [stage.key for stage in pipeline.stages if kinds.get(stage.key) != stage.kind]
    held = await repository.deals_in(pipeline.id, touched)
    if held:
        described = ", ".join(f"{key} ({count} deals)" for key, count in sorted(held.items()))
        raise InUse(
            f"Stages that deals are in cannot be removed or change kind: {described}. Move the deals first."
        )


def _same_stages(pipeline: Pipeline, wanted: Sequence[StageIn]) -> bool:
    current = [(s.key, s.label, s.probability, s.kind) for s in pipeline.stages]
    return current == [(s.key, s.label, s.probability, s.kind.value) for s in wanted]


def _replace_stages(pipeline: Pipeline, wanted: Sequence[StageIn]) -> None:
    # Stages that stay are changed in place: deals refer to them by (pipeline, key).
    existing = {stage.key: stage for stage in pipeline.stages}
    stages = []
    for position, data in enumerate(wanted, start=1):
        stage = existing.get(data.key)
        if stage is None:
            stages.append(_stage(position, data))
            continue
        stage.label, stage.position, stage.probability, stage.kind = (
            data.label,
            position,
            data.probability,
            data.kind.value,
        )
        stages.append(stage)
    pipeline.stages = stages  # the ones left out are deleted (delete-orphan)
