"""Postbacks (JSON POST, GET with query parameters, signed POST), conversions, their attribution and review,
and the sources that sign postbacks."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from services.referrals.conversions import service, signing
from services.referrals.conversions.fraud import FraudRules
from services.referrals.conversions.models import Conversion
from services.referrals.conversions.repository import NEWEST_FIRST
from services.referrals.conversions.schemas import (
    POSTBACK_EXAMPLE,
    AttributionRead,
    ConversionDetail,
    ConversionRead,
    ConversionStatus,
    Outcome,
    PostbackIn,
    PostbackRead,
    PostbackResult,
    PostbackSourceCreate,
    PostbackSourceCreated,
    PostbackSourceRead,
    Review,
    ReviewIn,
)
from services.referrals.settings import ReferralsSettings
from shared.auth.principal import Principal
from shared.pagination import PageRequest
from shared.web.auth import PUBLIC, requires
from shared.web.deps import ReadSessionDep, RuntimeDep, SessionDep
from shared.web.idempotency import HEADER as IDEMPOTENCY_HEADER
from shared.web.idempotency import checked_key
from shared.web.pagination import Page, page_request, paginated
from shared.web.problems import PROBLEM_RESPONSES, ProblemError, problem_doc
from shared.web.routing import api_router

postbacks_router = api_router(prefix="/v1/postbacks", tags=["postbacks"])
sources_router = api_router(prefix="/v1/postback-sources", tags=["postbacks"])
conversions_router = api_router(prefix="/v1/conversions", tags=["conversions"])

Poster = Annotated[Principal, requires("referrals:postback", affiliate_keys=True)]

# One postback and room to spare.
MAX_POSTBACK_BYTES = 16_384

_IDEMPOTENCY_PARAMETER = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": "Any unique value (a UUID) for this postback: a repeat with it is answered as a "
    "duplicate of the first, whatever its body says. Without it, the source and `transaction_id` (and "
    "`status`) tell a repeat.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
}

_TAKEN: dict[int | str, dict[str, Any]] = {
    200: {
        "model": PostbackResult,
        "description": "A postback of a known conversion: `duplicate` (a retry; nothing changed), "
        "`status_changed` or `stale`.",
    },
    201: {"model": PostbackResult, "description": "A new conversion, attributed or not."},
    422: problem_doc(
        "Invalid input, naming the field: e.g. an `amount` that is not an integer of minor units, no "
        "`click_id`/`code`/`customer_id`, a goal the program does not name, or no program to be found."
    ),
}

_POSTBACK_DESCRIPTION = (
    "One conversion per source (the API key, or the signing source) and `transaction_id`, whatever the "
    "retries. The answer holds the conversion and the `outcome`: `recorded` (201, a new conversion, "
    "announced as `crm.conversion.recorded`), `duplicate` (the same status again, or an "
    "`Idempotency-Key` seen before: nothing changes, `duplicate` is true, announced as "
    "`crm.conversion.duplicate`), `status_changed` (a later status: `crm.conversion.status_changed`), or "
    "`stale` (an older status after a newer one, e.g. the sale after its refund: the status stays and the "
    "details the conversion lacked are filled in). An unknown, expired or bot click is not an error: the "
    "conversion is kept unattributed with the reason (`GET /v1/conversions/{id}/attribution`). A key bound "
    "to an affiliate may post; its conversions can credit that affiliate only (`not_own_click` otherwise)."
)


async def _settings(runtime: RuntimeDep) -> ReferralsSettings:
    # async: FastAPI runs a plain `def` dependency in a thread, a hop per postback for nothing.
    settings = runtime.settings
    assert isinstance(settings, ReferralsSettings)
    return settings


SettingsDep = Annotated[ReferralsSettings, Depends(_settings)]


def _rules(settings: ReferralsSettings) -> FraudRules:
    return FraudRules(
        min_click_to_conversion_s=settings.fraud_min_click_to_conversion_s,
        burst_clicks=settings.fraud_burst_clicks,
        burst_minutes=settings.fraud_burst_minutes,
    )


def _validated(raw: Mapping[str, Any], location: Literal["body", "query"]) -> PostbackIn:
    try:
        data = PostbackIn.model_validate(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": (location, *error["loc"])} for error in exc.errors(include_url=False)]
        ) from exc
    return _naming_someone(data, location)


def _naming_someone(data: PostbackIn, location: str) -> PostbackIn:
    if not data.names_whom():
        raise RequestValidationError(
            [
                {
                    "type": "missing",
                    "loc": (location, "click_id"),
                    "msg": "Name the conversion's click_id, a referral code (code), or the customer_id.",
                    "input": None,
                }
            ]
        )
    return data


def _idempotency_key(request: Request) -> str | None:
    value = request.headers.get(IDEMPOTENCY_HEADER)
    return checked_key(value) if value is not None else None


def _affiliate_of(principal: Principal) -> uuid.UUID | None:
    if principal.affiliate_id is None:
        return None
    try:
        return uuid.UUID(principal.affiliate_id)
    except ValueError:
        return uuid.UUID(int=0)  # bound to no affiliate this service knows: it can credit no one


async def _take(runtime: RuntimeDep, item: service.NewPostback, response: Response) -> PostbackResult:
    # Concurrent postbacks share a transaction and a commit (group commit; see shared.batching).
    taken = await runtime.batched(service.take_postbacks).submit(item)
    if taken.outcome is not Outcome.RECORDED or item.method == "GET":
        response.status_code = status.HTTP_200_OK
    return PostbackResult(
        postback_id=taken.postback_id,
        outcome=taken.outcome,
        duplicate=taken.duplicate,
        conversion=ConversionRead.model_validate(taken.conversion),
    )


@postbacks_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Post a conversion (JSON)",
    description=_POSTBACK_DESCRIPTION
    + " The key comes as `Authorization: Bearer`, or as the `key` query parameter.",
    responses={**_TAKEN, **PROBLEM_RESPONSES},
    openapi_extra={
        "x-key-in-query": True,
        # The postback's own idempotency (below) answers a repeat as a duplicate, with its event; the
        # edge's would replay the first answer, not marked as one.
        "x-idempotency": False,
        "x-max-body-bytes": MAX_POSTBACK_BYTES,
        "parameters": [_IDEMPOTENCY_PARAMETER],
        "requestBody": {"content": {"application/json": {"example": POSTBACK_EXAMPLE}}},
    },
)
async def post_postback(
    body: PostbackIn,
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    settings: SettingsDep,
    principal: Poster,
) -> PostbackResult:
    item = service.NewPostback(
        data=_naming_someone(body, "body"),
        source=principal.key_id,
        method="POST",
        authenticated_by="key",
        idempotency_key=_idempotency_key(request),
        caller_affiliate=_affiliate_of(principal),
        rules=_rules(settings),
    )
    return await _take(runtime, item, response)


def _query_parameters() -> list[dict[str, Any]]:
    properties = PostbackIn.model_json_schema()["properties"]
    parameters = []
    for name, info in PostbackIn.model_fields.items():
        schema = {"type": "integer"} if name == "amount" else {"type": "string"}
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": info.is_required(),
                "description": properties.get(name, {}).get("description", ""),
                "schema": schema,
            }
        )
    return parameters


@postbacks_router.get(
    "",
    summary="Post a conversion (GET with query parameters)",
    description=_POSTBACK_DESCRIPTION
    + " For trackers that can only fire a URL: the same fields as the JSON postback, as query "
    "parameters (unknown ones are ignored, so a template's extra macros do no harm), the key as "
    "`Authorization: Bearer` or `key`, e.g. `GET /v1/postbacks?key=crm_…&click_id={click_id}"
    "&txid={order_id}&amount={amount_cents}&currency=EUR&status=approved`. Always 200 when taken; a "
    "repeat of the same URL is a duplicate.",
    responses={**_TAKEN, **PROBLEM_RESPONSES},
    openapi_extra={"x-key-in-query": True, "parameters": _query_parameters()},
)
async def get_postback(
    request: Request, response: Response, runtime: RuntimeDep, settings: SettingsDep, principal: Poster
) -> PostbackResult:
    item = service.NewPostback(
        data=_validated(request.query_params, "query"),
        source=principal.key_id,
        method="GET",
        authenticated_by="key",
        caller_affiliate=_affiliate_of(principal),
        rules=_rules(settings),
    )
    return await _take(runtime, item, response)


SourceNamePath = Annotated[str, Path(min_length=1, max_length=120, description="The signing source's name.")]


@sources_router.post(
    "/{name}/postbacks",
    status_code=status.HTTP_201_CREATED,
    summary="Post a conversion signed by its source",
    description=_POSTBACK_DESCRIPTION
    + " No API key: the body is signed with the source's secret, `X-CRM-Signature: t=<unix seconds>,"
    "v1=<hex HMAC-SHA256 of '<t>.<raw body>'>`; a timestamp further than "
    "`CRM_REFERRALS_POSTBACK_SIGNATURE_TOLERANCE_S` (300 s) from the server's clock is refused, so a "
    "captured request cannot be replayed later. 401 for an unknown source or a bad signature.",
    dependencies=[PUBLIC],
    responses={
        **_TAKEN,
        401: problem_doc("No signature, a bad one, a stale timestamp, or an unknown source."),
        **PROBLEM_RESPONSES,
    },
    openapi_extra={
        "x-idempotency": False,
        "parameters": [
            _IDEMPOTENCY_PARAMETER,
            {
                "name": signing.HEADER,
                "in": "header",
                "required": True,
                "description": "`t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<raw body>'>`.",
                "schema": {"type": "string"},
            },
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/PostbackIn"},
                    "example": POSTBACK_EXAMPLE,
                }
            },
        },
    },
)
async def post_signed_postback(
    name: SourceNamePath,
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    settings: SettingsDep,
    session: ReadSessionDep,
) -> PostbackResult:
    body = await request.body()
    if len(body) > MAX_POSTBACK_BYTES:
        raise ProblemError(413, "Request body too large", slug="413", detail="A postback is at most 16 KiB.")
    source = await service.find_source(session, name)
    try:
        signature = signing.parse(request.headers.get(signing.HEADER))
        if source is None:
            raise signing.BadSignature("The signature does not match the body, the timestamp or the source.")
        signing.verify(
            signature,
            service.source_secret(session, source),
            body,
            now=time.time(),
            tolerance_s=settings.postback_signature_tolerance_s,
        )
    except signing.BadSignature as exc:
        raise ProblemError(401, "Unauthorized", slug="unauthorized", detail=str(exc)) from exc
    try:
        raw = json.loads(body)
    except ValueError as exc:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": "The body is not JSON.", "input": None}]
        ) from exc
    if not isinstance(raw, dict):
        raise RequestValidationError(
            [{"type": "model_type", "loc": ("body",), "msg": "Send a JSON object.", "input": None}]
        )
    item = service.NewPostback(
        data=_validated(raw, "body"),
        source=name,
        method="POST",
        authenticated_by="signature",
        idempotency_key=_idempotency_key(request),
        rules=_rules(settings),
    )
    return await _take(runtime, item, response)


@sources_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a signing source",
    description="A tracker or shop that signs its postbacks instead of sending a key. The answer holds "
    "the secret, this once: it is not stored, only a salt it is derived from with the deployment's key. "
    "The source posts to `POST /v1/postback-sources/{name}/postbacks`; its conversions' `source` is its "
    "name. 409 when the name is taken.",
    responses={409: problem_doc("The name is taken; `existing_id` is it."), **PROBLEM_RESPONSES},
    dependencies=[requires("referrals:write")],
    # The answer shows a secret once: it must not be kept for a replay.
    openapi_extra={"x-idempotency": False},
)
async def create_source(body: PostbackSourceCreate, session: SessionDep) -> PostbackSourceCreated:
    created = await service.create_source(session, body.name, body.description)
    return PostbackSourceCreated(
        name=created.source.name,
        description=created.source.description,
        created_at=created.source.created_at,
        secret=created.secret,
    )


@sources_router.get(
    "",
    summary="List signing sources",
    description="Every signing source, by name; never their secrets.",
    responses=PROBLEM_RESPONSES,
    dependencies=[requires("referrals:read")],
)
async def list_sources(session: ReadSessionDep) -> list[PostbackSourceRead]:
    return [PostbackSourceRead.model_validate(source) for source in await service.list_sources(session)]


# Conversions

ConversionId = Annotated[uuid.UUID, Path(description="The conversion's id.")]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: problem_doc("No such conversion.")}


@conversions_router.get(
    "",
    summary="List conversions",
    description="Newest first, a page at a time, narrowed by any of the filters.",
    responses=PROBLEM_RESPONSES,
    dependencies=[requires("referrals:read")],
)
async def list_conversions(
    request: Request,
    response: Response,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(NEWEST_FIRST))],
    program_id: Annotated[uuid.UUID | None, Query(description="Only this program's.")] = None,
    affiliate_id: Annotated[
        uuid.UUID | None, Query(description="Only those crediting this affiliate.")
    ] = None,
    status: Annotated[ConversionStatus | None, Query(description="Only those in this status.")] = None,
    attributed: Annotated[
        bool | None, Query(description="Only attributed ones, or only unattributed.")
    ] = None,
    review: Annotated[
        Review | None, Query(description="Only those in this review state, e.g. `held`.")
    ] = None,
) -> Page[ConversionRead]:
    found = await service.list_conversions(
        session,
        page,
        program_id=program_id,
        affiliate_id=affiliate_id,
        status=status.value if status is not None else None,
        attributed=attributed,
        review=review.value if review is not None else None,
    )
    return paginated(request, response, found, ConversionRead.model_validate)


@conversions_router.get(
    "/{conversion_id}",
    summary="Get a conversion",
    description="The conversion, with every postback that reported it (oldest first) and what each did.",
    responses={**_NOT_FOUND, **PROBLEM_RESPONSES},
    dependencies=[requires("referrals:read")],
)
async def get_conversion(conversion_id: ConversionId, session: ReadSessionDep) -> ConversionDetail:
    conversion = await service.get_conversion(session, conversion_id)
    postbacks = await service.postbacks_of(session, conversion_id)
    return ConversionDetail(
        **ConversionRead.model_validate(conversion).model_dump(),
        postbacks=[PostbackRead.model_validate(postback) for postback in postbacks],
    )


@conversions_router.get(
    "/{conversion_id}/attribution",
    summary="Explain a conversion's attribution",
    description="The decision as it was taken when the conversion was recorded: the rule, the window, "
    "the same visitor's clicks in the program (each inside the window or not, bot or not), the winner, "
    "and why no one was credited when no one was.",
    responses={**_NOT_FOUND, **PROBLEM_RESPONSES},
    dependencies=[requires("referrals:read")],
)
async def get_attribution(conversion_id: ConversionId, session: ReadSessionDep) -> AttributionRead:
    conversion = await service.get_conversion(session, conversion_id)
    return _attribution(conversion)


def _attribution(conversion: Conversion) -> AttributionRead:
    return AttributionRead.model_validate({**conversion.attribution, "conversion_id": conversion.id})


@conversions_router.post(
    "/{conversion_id}/review",
    summary="Review a held conversion",
    description="Decide on a conversion a fraud check held (`review` is `held`; its `fraud_flags` say "
    "why). `approve` releases what it earned; `reject` rejects it (announced as "
    "`crm.conversion.status_changed` with the note as reason) and reverses its commissions. 409 when it "
    "is not held.",
    responses={**_NOT_FOUND, 409: problem_doc("The conversion is not held for review."), **PROBLEM_RESPONSES},
    dependencies=[requires("referrals:write")],
)
async def review_conversion(
    conversion_id: ConversionId, body: ReviewIn, session: SessionDep
) -> ConversionRead:
    conversion = await service.review_conversion(session, conversion_id, body.decision, body.note)
    return ConversionRead.model_validate(conversion)
