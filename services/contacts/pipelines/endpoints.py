"""Sales pipelines and their stages; `sales` is the default one, there from the start."""

import uuid
from typing import Annotated, Any

from fastapi import Depends, Request, Response, status

from services.contacts.pipelines import service
from services.contacts.pipelines.repository import OLDEST_FIRST
from services.contacts.pipelines.schemas import PipelineCreate, PipelinePatch, PipelineRead
from shared.pagination import PageRequest
from shared.web.auth import requires
from shared.web.deps import ReadSessionDep, SessionDep
from shared.web.etag import ETAG, IfMatchDep, IfNoneMatchHeader, not_modified
from shared.web.pagination import Page, page_request, paginated
from shared.web.problems import PROBLEM_RESPONSES, problem_doc
from shared.web.routing import api_router

router = api_router(prefix="/v1/pipelines", tags=["pipelines"])

_NO_PIPELINE: dict[int | str, dict[str, Any]] = {404: problem_doc("No such pipeline.")}


@router.get(
    "",
    summary="List pipelines",
    description="Oldest first, so the default `sales` pipeline comes first; each with its stages in "
    "order. Cursor-paginated.",
    responses=PROBLEM_RESPONSES,
    dependencies=[requires("contacts:read")],
)
async def list_pipelines(
    request: Request,
    response: Response,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(OLDEST_FIRST))],
) -> Page[PipelineRead]:
    found = await service.list_pipelines(session, page)
    return paginated(request, response, found, PipelineRead.model_validate)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a pipeline",
    description="A pipeline with its stages in order: at least one `open` stage, exactly one `won` "
    "(probability 100) and one `lost` (probability 0).",
    responses={409: problem_doc("Key already used; `existing_id` names the pipeline."), **PROBLEM_RESPONSES},
    dependencies=[requires("contacts:write")],
)
async def create_pipeline(
    body: PipelineCreate, session: SessionDep, request: Request, response: Response
) -> PipelineRead:
    pipeline = await service.create_pipeline(session, body)
    response.headers["Location"] = str(request.url_for("get_pipeline", pipeline_id=pipeline.id))
    response.headers[ETAG] = pipeline.etag
    return PipelineRead.model_validate(pipeline)


@router.get(
    "/{pipeline_id}",
    summary="Get a pipeline",
    description="With its stages in order, and its `ETag`; with `If-None-Match` naming it, 304.",
    response_model=PipelineRead,
    responses={
        304: {"description": "Not modified: `If-None-Match` names the current `ETag`."},
        **_NO_PIPELINE,
        **PROBLEM_RESPONSES,
    },
    dependencies=[requires("contacts:read")],
)
async def get_pipeline(
    pipeline_id: uuid.UUID,
    session: ReadSessionDep,
    response: Response,
    if_none_match: IfNoneMatchHeader = None,
) -> PipelineRead | Response:
    pipeline = await service.get_pipeline(session, pipeline_id)
    if unchanged := not_modified(if_none_match, pipeline.etag):
        return unchanged
    response.headers[ETAG] = pipeline.etag
    return PipelineRead.model_validate(pipeline)


@router.patch(
    "/{pipeline_id}",
    summary="Update a pipeline",
    description="Rename it, and/or give its stages as they are to be, in order: new keys are added, "
    "keys left out removed, the others relabelled and reordered. A stage that deals are in cannot be "
    "removed or change kind (409). Honours `If-Match` (412 with the current `ETag`).",
    responses={
        **_NO_PIPELINE,
        409: problem_doc("A stage to be removed, or to change kind, still holds deals."),
        412: problem_doc("`If-Match` names an older version; the `ETag` header has the current one."),
        **PROBLEM_RESPONSES,
    },
    dependencies=[requires("contacts:write")],
)
async def update_pipeline(
    pipeline_id: uuid.UUID,
    body: PipelinePatch,
    session: SessionDep,
    response: Response,
    if_match: IfMatchDep,
) -> PipelineRead:
    pipeline = await service.update_pipeline(session, pipeline_id, body, if_match=if_match)
    response.headers[ETAG] = pipeline.etag
    return PipelineRead.model_validate(pipeline)
