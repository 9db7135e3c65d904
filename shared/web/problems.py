"""RFC 9457 problem details (`application/problem+json`) for every error a service returns."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

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
    request_id: str | None = None


class ProblemError(Exception):
    """Raise from service code to answer with a problem document."""

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


class NotFound(ProblemError):
    def __init__(self, what: str, identifier: object) -> None:
        super().__init__(
            404, f"{what} not found", slug="not-found", detail=f"No {what.lower()} with id {identifier}."
        )


class Conflict(ProblemError):
    def __init__(self, detail: str, *, existing_id: object) -> None:
        super().__init__(409, "Conflict", slug="conflict", detail=detail, existing_id=str(existing_id))


def problem_response(
    request: Request, problem: Problem, headers: dict[str, str] | None = None
) -> JSONResponse:
    problem.instance = problem.instance or request.url.path
    problem.request_id = request.scope.get("state", {}).get("request_id")
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


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
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


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    problem = Problem(type=PROBLEM_BASE + "internal", title="Internal server error", status=500)
    return problem_response(request, problem)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(Exception, _unhandled)


def problem_doc(description: str) -> dict[str, Any]:
    """An OpenAPI `responses` entry for an answer in problem+json."""
    # `model` registers the Problem schema; the content entry says it comes as problem+json.
    schema = {"$ref": "#/components/schemas/Problem"}
    return {"model": Problem, "description": description, "content": {PROBLEM_JSON: {"schema": schema}}}


# Every endpoint with input answers bad input the same way; list this in its `responses`.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: problem_doc("Invalid input; `errors` names each field."),
}
