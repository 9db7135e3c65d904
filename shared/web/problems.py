"""RFC 9457 problem details (`application/problem+json`) for every error a service returns."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import AlreadyExists, DomainError, Gone, InUse, InvalidValue, NotFound, StaleVersion
from shared.web.request_id import HEADER as REQUEST_ID_HEADER

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "urn:crm:problem:"


class FieldProblem(BaseModel):
    field: str = Field(description="Dotted path of the offending field, e.g. `email` or `items.0.email`.")
    location: str = Field(description="Where the field was: body, query, path or header.")
    message: str
    code: str = Field(description="Machine-readable reason, e.g. `value_error` or `missing`.")


class Problem(BaseModel):
    type: str = Field(description="URI identifying the kind of problem.")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldProblem] | None = Field(None, description="Field-level details for invalid input.")
    existing_id: str | None = Field(None, description="On 409: the id of the resource already there.")
    required_scope: str | None = Field(None, description="On 403: the scope the route needs.")
    request_id: str | None = None
    code: str | None = Field(
        None,
        description="On the Segment-compatible tracking routes only: the problem's kind (the end of `type`), "
        "where Segment's and RudderStack's libraries read an error's reason.",
    )
    message: str | None = Field(
        None, description="On the tracking routes only: `detail` (or `title`), as those libraries read it."
    )


SEGMENT_SHAPED = "segment_shaped_problems"
"""Request state flag set by the edge on routes that take a write key (`shared.web.routing`): their
problems also carry `code` and `message`, which Segment-style clients read and crash without."""


class ProblemError(Exception):
    """Raised by web-layer code (auth, limits, HTTP preconditions) to answer with a problem document.

    Service code raises `shared.errors` instead; `_domain_error` maps those here, at the edge."""

    def __init__(
        self,
        status: int,
        title: str,
        *,
        slug: str,
        detail: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.slug = slug
        self.detail = detail
        self.headers = headers
        self.extra = extra


def problem_response(
    request: Request, problem: Problem, headers: dict[str, str] | None = None
) -> JSONResponse:
    problem.instance = problem.instance or request.url.path
    state = request.scope.get("state", {})
    problem.request_id = state.get("request_id")
    if state.get(SEGMENT_SHAPED):
        problem.code = problem.type.removeprefix(PROBLEM_BASE)
        problem.message = problem.detail or problem.title
    headers = dict(headers or {})
    if problem.request_id:
        # Set here as well as by the middleware: a 500 is sent from outside the middleware stack.
        headers[REQUEST_ID_HEADER] = problem.request_id
    return JSONResponse(
        problem.model_dump(exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _field_path(location: tuple[Any, ...]) -> tuple[str, str]:
    if not location:
        return "", "body"
    where, *rest = location
    return ".".join(str(part) for part in rest) or str(where), str(where)


def _malformed_json(error: dict[str, Any]) -> FieldProblem:
    # Pydantic puts the character offset where a field name would be; say "body" and where instead.
    location = tuple(error.get("loc", ()))
    position = location[1] if len(location) > 1 else None
    reason = str((error.get("ctx") or {}).get("error", "invalid JSON"))
    where = f" at character {position}" if isinstance(position, int) else ""
    return FieldProblem(
        field="body", location="body", message=f"Malformed JSON{where}: {reason}.", code="json_invalid"
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            errors.append(_malformed_json(error))
            continue
        field, location = _field_path(tuple(error.get("loc", ())))
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        errors.append(
            FieldProblem(field=field, location=location, message=message, code=str(error.get("type")))
        )
    fields = ", ".join(sorted({error.field for error in errors}))
    problem = Problem(
        type=PROBLEM_BASE + "validation",
        title="Request validation failed",
        status=422,
        detail=f"Invalid or missing: {fields}.",
        errors=errors,
    )
    return problem_response(request, problem)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    problem = Problem(
        type=PROBLEM_BASE + str(exc.status_code),
        title=str(exc.detail) if exc.detail else "HTTP error",
        status=exc.status_code,
    )
    return problem_response(request, problem, headers=dict(exc.headers) if exc.headers else None)


async def _problem_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    problem = Problem(
        type=PROBLEM_BASE + exc.slug, title=exc.title, status=exc.status, detail=exc.detail, **exc.extra
    )
    return problem_response(request, problem, headers=exc.headers)


# Each kind of domain error answers with one status; a subclass answers like its kind.
_DOMAIN_STATUS: dict[type[DomainError], tuple[int, str]] = {
    NotFound: (404, "not-found"),
    Gone: (410, "gone"),
    AlreadyExists: (409, "conflict"),
    InUse: (409, "conflict"),
    StaleVersion: (412, "precondition-failed"),
    InvalidValue: (422, "validation"),
}


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    status, slug = next(
        (answer for kind, answer in _DOMAIN_STATUS.items() if isinstance(exc, kind)), (400, "bad-request")
    )
    problem = Problem(type=PROBLEM_BASE + slug, title=exc.title, status=status, detail=exc.detail)
    headers: dict[str, str] = {}
    if isinstance(exc, AlreadyExists):
        problem.existing_id = exc.existing_id
    elif isinstance(exc, StaleVersion):
        headers["ETag"] = exc.current
    elif isinstance(exc, InvalidValue):
        problem.errors = [FieldProblem(field=exc.field, location="body", message=exc.detail, code="invalid")]
    return problem_response(request, problem, headers=headers)


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    problem = Problem(type=PROBLEM_BASE + "internal", title="Internal server error", status=500)
    return problem_response(request, problem)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(Exception, _unhandled)


def problem_doc(description: str) -> dict[str, Any]:
    """An OpenAPI `responses` entry for an answer in problem+json, and only in that: no `model`, which
    would list `application/json` too. `with_problem_schemas` puts the schema it refers to in place."""
    schema = {"$ref": "#/components/schemas/Problem"}
    return {"description": description, "content": {PROBLEM_JSON: {"schema": schema}}}


def with_problem_schemas(document: dict[str, Any]) -> dict[str, Any]:
    """Add `Problem` (and `FieldProblem`) to an OpenAPI document's component schemas."""
    schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(schema.pop("$defs", {}))
    schemas["Problem"] = schema
    return document


# Every endpoint with input answers bad input the same way; list this in its `responses`.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: problem_doc("Invalid input; `errors` names each field."),
}


async def answer_for(request: Request, exc: Exception) -> JSONResponse | None:
    """The problem answer for an expected error, as the installed handlers would give; None for a crash.

    Used where an answer must be seen before it is sent (idempotency keeps it for a replay)."""
    if isinstance(exc, DomainError):
        return await _domain_error(request, exc)
    if isinstance(exc, ProblemError):
        return await _problem_error(request, exc)
    if isinstance(exc, RequestValidationError):
        return await _validation_error(request, exc)
    if isinstance(exc, StarletteHTTPException):
        return await _http_error(request, exc)
    return None
