"""The Segment HTTP Tracking API: `/v1/track`, `/v1/page`, `/v1/screen`, `/v1/identify`, `/v1/group`,
`/v1/alias` and `/v1/batch`, with the write key as HTTP Basic user name. Each call is one touchpoint."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from services.journeys.settings import JourneysSettings
from services.journeys.touchpoints import service as touchpoints
from services.journeys.tracking import service
from services.journeys.tracking.schemas import (
    Accepted,
    AliasCall,
    BatchCall,
    Call,
    GroupCall,
    IdentifyCall,
    PageCall,
    ScreenCall,
    TrackCall,
)
from shared.auth.principal import Principal
from shared.db import utc_now
from shared.web.auth import requires_write_key
from shared.web.deps import RuntimeDep, SessionDep
from shared.web.problems import PROBLEM_BASE, PROBLEM_RESPONSES, FieldProblem, Problem, problem_response
from shared.web.routing import api_router

router = api_router(prefix="/v1", tags=["tracking"])

Writer = Annotated[Principal, requires_write_key("journeys:write")]

# Segment's limits: 32 KB a call, 500 KB a batch.
MAX_CALL_BYTES = 32_768
MAX_BATCH_BYTES = 512_000

_CALL = TypeAdapter(Call)
_SEGMENT = (
    "Segment-compatible: a Segment or RudderStack library pointed at this service works unchanged (write "
    'key: an API key with `journeys:write`, as the HTTP Basic user name). Answers `{"success": true}`. '
    "A repeated `messageId` records nothing again. Bad input: 422 naming the field, nothing recorded."
)


def _extra(example: dict[str, Any], limit: int = MAX_CALL_BYTES) -> dict[str, Any]:
    return {
        "x-max-body-bytes": limit,
        "requestBody": {"content": {"application/json": {"example": example}}},
    }


def _user_system(runtime: RuntimeDep) -> str:
    settings = runtime.settings
    assert isinstance(settings, JourneysSettings)
    return settings.tracking_user_system


async def _record_one(call: service.AnyCall, runtime: RuntimeDep, principal: Principal) -> Accepted:
    try:
        data = service.touchpoint_of(call, received_at=utc_now(), user_system=_user_system(runtime))
    except service.CallRefused as exc:
        raise RequestValidationError(
            [{"type": p.code, "loc": ("body", *p.field.split(".")), "msg": p.message} for p in exc.problems]
        ) from None
    # Concurrent calls share a transaction and a commit (group commit; see shared.batching).
    await runtime.batched(touchpoints.record_touchpoints).submit(
        touchpoints.NewTouchpoint(data, principal.key_id)
    )
    return Accepted()


@router.post(
    "/track",
    summary="Track an event (Segment `track`)",
    description="Records what the user did as a touchpoint of type `event`. " + _SEGMENT,
    responses=PROBLEM_RESPONSES,
    openapi_extra=_extra(
        {
            "userId": "user-7",
            "event": "Webinar Attended",
            "properties": {"channel": "webinar", "stage": "consideration", "team": "marketing"},
            "timestamp": "2026-11-20T14:03:00Z",
            "messageId": "0b6f1d5e-webinar",
        }
    ),
)
async def track(call: TrackCall, runtime: RuntimeDep, principal: Writer) -> Accepted:
    return await _record_one(call, runtime, principal)


@router.post(
    "/page",
    summary="Record a page view (Segment `page`)",
    description="Records a `page_view` touchpoint on channel `web`; its content id is the page's path. "
    + _SEGMENT,
    responses=PROBLEM_RESPONSES,
    openapi_extra=_extra(
        {
            "anonymousId": "a1b2c3d4",
            "name": "Why one history",
            "properties": {
                "path": "/blog/why-one-history",
                "url": "https://example.com/blog/why-one-history",
            },
            "context": {"campaign": {"name": "autumn", "source": "google", "medium": "cpc"}},
        }
    ),
)
async def page(call: PageCall, runtime: RuntimeDep, principal: Writer) -> Accepted:
    return await _record_one(call, runtime, principal)


@router.post(
    "/screen",
    summary="Record a screen view (Segment `screen`)",
    description="Records a `screen_view` touchpoint on channel `app`. " + _SEGMENT,
    responses=PROBLEM_RESPONSES,
    openapi_extra=_extra({"userId": "user-7", "name": "Pricing"}),
)
async def screen(call: ScreenCall, runtime: RuntimeDep, principal: Writer) -> Accepted:
    return await _record_one(call, runtime, principal)


@router.post(
    "/identify",
    summary="Identify a user (Segment `identify`)",
    description="Ties the visitor's `anonymousId` to the `userId` and to the email in `traits`, and "
    "records an `identify` touchpoint. The visitor's touchpoints, earlier and later, join the contact "
    "with that email as soon as contacts knows it (identity stitching, no call to contacts). Of the "
    "traits only the email's keyed hash is kept; no trait is stored or put on a topic. " + _SEGMENT,
    responses=PROBLEM_RESPONSES,
    openapi_extra=_extra(
        {"anonymousId": "a1b2c3d4", "userId": "user-7", "traits": {"email": "ada@example.com", "name": "Ada"}}
    ),
)
async def identify(call: IdentifyCall, runtime: RuntimeDep, principal: Writer) -> Accepted:
    return await _record_one(call, runtime, principal)


@router.post(
    "/group",
    summary="Put a user in a group (Segment `group`)",
    description="Records a `group` touchpoint with the `groupId` in its properties; the group's traits "
    "are not stored. " + _SEGMENT,
    responses=PROBLEM_RESPONSES,
    openapi_extra=_extra({"userId": "user-7", "groupId": "acme", "traits": {"name": "Acme"}}),
)
async def group(call: GroupCall, runtime: RuntimeDep, principal: Writer) -> Accepted:
    return await _record_one(call, runtime, principal)


@router.post(
    "/alias",
    summary="Alias two ids (Segment `alias`)",
    description="Says `previousId` (an anonymous id) and `userId` are one person, and records an `alias` "
    "touchpoint that stitching follows. " + _SEGMENT,
    responses=PROBLEM_RESPONSES,
    openapi_extra=_extra({"previousId": "a1b2c3d4", "userId": "user-7"}),
)
async def alias(call: AliasCall, runtime: RuntimeDep, principal: Writer) -> Accepted:
    return await _record_one(call, runtime, principal)


@router.post(
    "/batch",
    summary="Several calls at once (Segment `batch`)",
    description="Up to 1,000 calls of any type and 500 KB (413 beyond; a gzip body is unpacked first), as "
    "libraries send them; a `context` or `sentAt` beside `batch` applies to each call that has none. The "
    "good calls are recorded together. If some are bad, the answer is 422 naming each by its place "
    "(`batch.3.event`) and saying how many were recorded: sending the batch again once fixed records "
    "only what is missing, since every call's `messageId` is recorded once.",
    responses=PROBLEM_RESPONSES,
    openapi_extra=_extra(
        {
            "batch": [
                {"type": "page", "anonymousId": "a1b2c3d4", "properties": {"path": "/pricing"}},
                {
                    "type": "identify",
                    "anonymousId": "a1b2c3d4",
                    "userId": "user-7",
                    "traits": {"email": "a@b.co"},
                },
            ],
            "sentAt": "2026-11-20T14:03:01Z",
        },
        MAX_BATCH_BYTES,
    ),
)
async def batch(
    body: BatchCall, request: Request, runtime: RuntimeDep, session: SessionDep, principal: Writer
) -> Any:
    received_at = utc_now()
    user_system = _user_system(runtime)
    recorded: list[touchpoints.NewTouchpoint] = []
    problems: list[FieldProblem] = []
    for index, message in enumerate(body.batch):
        merged = {**message, "context": {**body.context, **service.as_object(message.get("context"))}}
        merged.setdefault("sentAt", body.sent_at)
        where = f"batch.{index}"
        try:
            call = _CALL.validate_python(merged)
            data = service.touchpoint_of(call, received_at=received_at, user_system=user_system)
        except ValidationError as exc:
            problems += [
                FieldProblem(
                    field=_located(where, error),
                    location="body",
                    message=error["msg"].removeprefix("Value error, "),
                    code=error["type"],
                )
                for error in exc.errors(include_url=False)
            ]
            continue
        except service.CallRefused as exc:
            problems += [
                FieldProblem(field=f"{where}.{p.field}", location="body", message=p.message, code=p.code)
                for p in exc.problems
            ]
            continue
        recorded.append(touchpoints.NewTouchpoint(data, principal.key_id))
    # One transaction for the good calls: one lookup for repeats and people, one insert, one outbox write.
    await touchpoints.record_touchpoints(session, recorded)
    if not problems:
        return Accepted()
    fields = ", ".join(sorted({problem.field for problem in problems}))
    problem = Problem(
        type=PROBLEM_BASE + "validation",
        title="Request validation failed",
        status=422,
        detail=f"{len(recorded)} of {len(body.batch)} calls recorded; invalid: {fields}.",
        errors=problems,
    )
    # Returned, not raised: raising would roll back the good calls with the request's transaction.
    return problem_response(request, problem)


def _located(where: str, error: ErrorDetails) -> str:
    """`batch.3.event` for the error of one call; the first part of a location is the call's type."""
    if error["type"].startswith("union_tag"):
        return f"{where}.type"
    return ".".join([where, *(str(part) for part in error["loc"][1:])])
