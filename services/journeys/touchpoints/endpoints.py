"""Touchpoints in, one at a time; each is announced as `crm.touchpoint.recorded` on `crm.touchpoints`."""

import uuid
from typing import Annotated, Any

from fastapi import Request, Response, status

from services.journeys.touchpoints import service
from services.journeys.touchpoints.models import Touchpoint
from services.journeys.touchpoints.schemas import (
    ANONYMOUS_EXAMPLE,
    PURCHASE_EXAMPLE,
    TOUCHPOINT_EXAMPLE,
    Channel,
    ExternalId,
    Stage,
    Team,
    TouchpointCreate,
    TouchpointRead,
)
from shared.auth.principal import Principal
from shared.batch import BatchRequest, BatchResult, Outcome, RecordError, RecordResult, validate_each
from shared.web.auth import requires
from shared.web.deps import ReadSessionDep, RuntimeDep, SessionDep
from shared.web.problems import PROBLEM_RESPONSES, problem_doc
from shared.web.routing import api_router

router = api_router(prefix="/v1/touchpoints", tags=["touchpoints"])

Writer = Annotated[Principal, requires("journeys:write")]

# One touchpoint, its properties (16 KiB at most) and room to spare; a batch takes more.
MAX_TOUCHPOINT_BYTES = 65_536
# As Segment's batch call: enough for 1,000 small touchpoints, and bounded for the one transaction.
MAX_BATCH_BYTES = 524_288


def read_model(touchpoint: Touchpoint) -> TouchpointRead:
    external = None
    if touchpoint.external_system is not None and touchpoint.external_id is not None:
        external = ExternalId(system=touchpoint.external_system, id=touchpoint.external_id)
    return TouchpointRead(
        id=touchpoint.id,
        message_id=touchpoint.message_id,
        contact_id=touchpoint.contact_id,
        anonymous_id=touchpoint.anonymous_id,
        external_id=external,
        channel=Channel(touchpoint.channel),
        type=touchpoint.type,
        stage=Stage(touchpoint.stage) if touchpoint.stage is not None else None,
        team=Team(touchpoint.team) if touchpoint.team is not None else None,
        campaign=touchpoint.campaign,
        content_id=touchpoint.content_id,
        utm_source=touchpoint.utm_source,
        utm_medium=touchpoint.utm_medium,
        utm_campaign=touchpoint.utm_campaign,
        utm_term=touchpoint.utm_term,
        utm_content=touchpoint.utm_content,
        properties=touchpoint.properties,
        revenue=touchpoint.revenue,
        currency=touchpoint.currency,
        order_id=touchpoint.order_id,
        score=touchpoint.score,
        occurred_at=touchpoint.occurred_at,
        received_at=touchpoint.received_at,
        actor=touchpoint.actor,
    )


_REPEAT: dict[int | str, dict[str, Any]] = {
    200: {
        "model": TouchpointRead,
        "description": "A `message_id` sent before: the touchpoint first recorded under it, nothing recorded "
        "again. Its URL is in `Content-Location`.",
    }
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Record a touchpoint",
    description="Records one touchpoint and announces it as `crm.touchpoint.recorded` on `crm.touchpoints` "
    "(ids and codes only: not `properties`, not the email). Say who it was with `contact_id`, `email`, "
    "`external_id` or `anonymous_id` (at least one): a contact id is taken as given, even one contacts "
    "does not know yet; an email (kept only as its keyed hash) or another id is matched with the contacts "
    "journeys has heard of, and a touchpoint that matches no one is kept, with `contact_id` null. "
    "`occurred_at` may be at most 24 hours ahead of the server's clock. A `message_id` sent again "
    "answers 200 with the first touchpoint and records nothing; `Idempotency-Key` works as everywhere.",
    responses={**_REPEAT, **PROBLEM_RESPONSES},
    openapi_extra={
        "x-max-body-bytes": MAX_TOUCHPOINT_BYTES,
        "requestBody": {
            "content": {
                "application/json": {
                    "examples": {
                        "webinar": {"summary": "Known by email", "value": TOUCHPOINT_EXAMPLE},
                        "purchase": {"summary": "A purchase by a known contact", "value": PURCHASE_EXAMPLE},
                        "anonymous": {"summary": "An anonymous page view", "value": ANONYMOUS_EXAMPLE},
                    }
                }
            }
        },
    },
)
async def record_touchpoint(
    body: TouchpointCreate, runtime: RuntimeDep, request: Request, response: Response, principal: Writer
) -> TouchpointRead:
    # Concurrent requests share a transaction and a commit (group commit; see shared.batching).
    recorded = await runtime.batched(service.record_touchpoints).submit(
        service.NewTouchpoint(body, principal.key_id)
    )
    url = str(request.url_for("get_touchpoint", touchpoint_id=recorded.touchpoint.id))
    if recorded.created:
        response.headers["Location"] = url
    else:
        response.status_code = status.HTTP_200_OK
        response.headers["Content-Location"] = url
    return read_model(recorded.touchpoint)


@router.post(
    "/batch",
    summary="Record up to 1,000 touchpoints",
    description='Takes `{"records": [...]}`, up to 1,000 touchpoints and 512 KB (413 beyond), each as '
    "`POST /v1/touchpoints` takes one. The answer has one result per record, in order: `created`, "
    "`unchanged` (a `message_id` recorded before, or earlier in this batch: `id` is that touchpoint), or "
    "`error` with the field to blame. One bad record never fails the others, so the request answers 200 "
    "whenever the body itself is well formed; the good ones are recorded and announced together.",
    responses=PROBLEM_RESPONSES,
    openapi_extra={
        "x-max-body-bytes": MAX_BATCH_BYTES,
        "requestBody": {
            "content": {
                "application/json": {
                    "example": {"records": [TOUCHPOINT_EXAMPLE, PURCHASE_EXAMPLE, ANONYMOUS_EXAMPLE]}
                }
            }
        },
    },
)
async def record_touchpoint_batch(body: BatchRequest, session: SessionDep, principal: Writer) -> BatchResult:
    validated = validate_each(TouchpointCreate, body.records)
    valid = [data for data in validated if isinstance(data, TouchpointCreate)]
    # One transaction for the good records: one lookup for repeats and people, one insert, one outbox write.
    recorded = iter(
        await service.record_touchpoints(
            session, [service.NewTouchpoint(data, principal.key_id) for data in valid]
        )
    )
    results = []
    for index, data in enumerate(validated):
        if isinstance(data, RecordError):
            results.append(RecordResult(index=index, status=Outcome.ERROR, error=data))
            continue
        done = next(recorded)
        outcome = Outcome.CREATED if done.created else Outcome.UNCHANGED
        results.append(RecordResult(index=index, status=outcome, id=done.touchpoint.id))
    return BatchResult.of(results)


@router.get(
    "/{touchpoint_id}",
    summary="Get a touchpoint",
    description="The touchpoint as recorded, with the contact it belongs to (null while unresolved). "
    "A touchpoint of an erased person is gone: 404.",
    responses={404: problem_doc("No such touchpoint."), **PROBLEM_RESPONSES},
    dependencies=[requires("journeys:read")],
)
async def get_touchpoint(touchpoint_id: uuid.UUID, session: ReadSessionDep) -> TouchpointRead:
    return read_model(await service.get_touchpoint(session, touchpoint_id))
