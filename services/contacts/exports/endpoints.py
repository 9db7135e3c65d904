import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Query
from fastapi.responses import StreamingResponse

from services.contacts.consents.schemas import ConsentRecordRead
from services.contacts.consents.service import marketing_allowed
from services.contacts.contacts.endpoints import read_model
from services.contacts.contacts.schemas import LifecycleTransitionRead, PropertyChangeRead
from services.contacts.entries.endpoints import read_model as entry_read_model
from services.contacts.exports import service
from services.contacts.exports.schemas import ExportFormat, HeldElsewhere, PersonalDataExport
from shared.web.auth import requires
from shared.web.deps import ReadSessionDep, RuntimeDep
from shared.web.problems import PROBLEM_RESPONSES, problem_doc
from shared.web.routing import api_router

router = api_router(prefix="/v1/contacts", tags=["export"])

_MEDIA_TYPES = {ExportFormat.NDJSON: "application/x-ndjson", ExportFormat.CSV: "text/csv; charset=utf-8"}


@router.get(
    "/export",
    summary="Export every contact",
    description="The whole contact base, streamed as NDJSON (one contact per line, as `GET` reads it) or "
    "CSV (lists joined by `;`, custom properties as `properties.<key>` columns). Read page by page, so it "
    "never holds the whole set in memory; erased contacts are left out.",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/x-ndjson": {}, "text/csv": {}}, "description": "The contacts."},
        **PROBLEM_RESPONSES,
    },
    dependencies=[requires("contacts:read")],
)
async def export_contacts(
    runtime: RuntimeDep,
    format: Annotated[ExportFormat, Query(description="`ndjson` or `csv`.")] = ExportFormat.NDJSON,
) -> StreamingResponse:
    database = runtime.database

    async def ndjson() -> AsyncIterator[str]:
        async for chunk in service.rendered_in_chunks(
            database, lambda d: read_model(d).model_dump_json() + "\n"
        ):
            yield chunk

    async def csv() -> AsyncIterator[str]:
        keys = await service.property_keys(database)
        yield service.csv_line(service.csv_columns(keys))
        async for chunk in service.rendered_in_chunks(
            database, lambda d: service.csv_row(d, keys, marketing_allowed)
        ):
            yield chunk

    body = ndjson() if format is ExportFormat.NDJSON else csv()
    filename = f"contacts.{format.value}"
    return StreamingResponse(
        body,
        media_type=_MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/{contact_id}/export",
    summary="Everything held about one person",
    description="A data-access export: the contact, every recorded change, lifecycle transitions, "
    "consent statements and entries (notes, reviews, ratings, feedback, suggestions), and what the other "
    "services hold about the person and where to read it.",
    responses={
        404: problem_doc("No such contact."),
        410: problem_doc("The contact was erased."),
        **PROBLEM_RESPONSES,
    },
    dependencies=[requires("contacts:read")],
)
async def export_person(contact_id: uuid.UUID, session: ReadSessionDep) -> PersonalDataExport:
    data = await service.person_data(session, contact_id)
    return PersonalDataExport(
        contact=read_model(data["details"]),
        history=[PropertyChangeRead.model_validate(row) for row in data["history"]],
        lifecycle=[LifecycleTransitionRead.model_validate(row) for row in data["lifecycle"]],
        consents=[ConsentRecordRead.model_validate(row) for row in data["consents"]],
        entries=[entry_read_model(entry) for entry in data["entries"]],
        elsewhere=[HeldElsewhere.model_validate(entry) for entry in data["elsewhere"]],
    )
