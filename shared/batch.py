"""Batch upsert: many records in one request, one result per record, one bad record failing only itself.

Every `/batch/upsert` endpoint takes `{"records": [...]}` and answers with a `BatchResult`: for each
record, in the request's order, whether it was `created`, `updated`, left `unchanged`, or refused with
the `error` naming its field. The request as a whole succeeds (200) even when some records fail, as
HubSpot's and Segment's batch APIs do: a client retries the failed ones, not the batch.

So the records are validated one by one here, not by the request model: a Pydantic model for the whole
body would refuse all of them for one bad field. `validate_each` turns each record into its model or a
`RecordError` whose `field` is the path inside that record (`email`, `phones.0`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from shared.errors import AlreadyExists, DomainError, InUse, InvalidValue, NotFound, StaleVersion

MAX_BATCH_RECORDS = 1000

ModelT = TypeVar("ModelT", bound=BaseModel)


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    ERROR = "error"


class RecordError(BaseModel):
    """Why one record was refused."""

    field: str | None = Field(description="Path of the offending field inside the record, if one is to blame")
    message: str
    code: str = Field(description="Machine-readable reason: `missing`, `value_error`, `conflict`, …")
    existing_id: str | None = Field(None, description="On `conflict`: the record already holding the value.")


class RecordResult(BaseModel):
    index: int = Field(description="Position of the record in the request.")
    status: Outcome
    id: uuid.UUID | None = Field(None, description="The record written or matched; null on error.")
    error: RecordError | None = None


class BatchRequest(BaseModel):
    """Records as plain objects: each is validated on its own (see `shared.batch`)."""

    records: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH_RECORDS)


class BatchResult(BaseModel):
    results: list[RecordResult]
    created: int
    updated: int
    unchanged: int
    failed: int

    @classmethod
    def of(cls, results: Sequence[RecordResult]) -> BatchResult:
        counts = dict.fromkeys(Outcome, 0)
        for result in results:
            counts[result.status] += 1
        return cls(
            results=list(results),
            created=counts[Outcome.CREATED],
            updated=counts[Outcome.UPDATED],
            unchanged=counts[Outcome.UNCHANGED],
            failed=counts[Outcome.ERROR],
        )


def _path(location: Iterable[Any]) -> str:
    return ".".join(str(part) for part in location)


def validate_each(model: type[ModelT], records: Sequence[dict[str, Any]]) -> list[ModelT | RecordError]:
    """Each record as `model`, or the error of its first invalid field."""
    adapter = TypeAdapter(model)
    validated: list[ModelT | RecordError] = []
    for record in records:
        try:
            validated.append(adapter.validate_python(record))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            validated.append(
                RecordError(field=_path(first["loc"]) or None, message=first["msg"], code=first["type"])
            )
    return validated


def error_of(exc: DomainError) -> RecordError:
    """A domain error raised for one record, as that record's error."""
    if isinstance(exc, AlreadyExists):
        return RecordError(field=None, message=exc.detail, code="conflict", existing_id=exc.existing_id)
    if isinstance(exc, InUse):
        return RecordError(field=None, message=exc.detail, code="conflict")
    if isinstance(exc, InvalidValue):
        return RecordError(field=exc.field, message=exc.detail, code="invalid")
    if isinstance(exc, NotFound):
        return RecordError(field=None, message=exc.detail, code="not_found")
    if isinstance(exc, StaleVersion):
        return RecordError(field=None, message=exc.detail, code="stale")
    return RecordError(field=None, message=exc.detail, code="refused")
