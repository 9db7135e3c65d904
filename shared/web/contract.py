"""The event contract as every service serves it: its part of the AsyncAPI document, and the schemas.

Both are public, like `/openapi.json`: a topic's readers need them before they hold any key. A record's
`ce_dataschema` (`urn:crm:schema:<type>:v<version>`) resolves to `/schemas/events/<type>/v<version>.json`
(see `shared.events.asyncapi.resolve_dataschema`). A service serves the schemas of the event versions
its build writes; older versions stay in the repository's `docs/events/`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse

from shared.events.asyncapi import event_schemas, schema_path, service_document
from shared.runtime import ServiceDefinition
from shared.web.auth import PUBLIC
from shared.web.problems import problem_doc
from shared.web.routing import api_router


class JSONSchemaResponse(JSONResponse):
    media_type = "application/schema+json"


def contract_router(definition: ServiceDefinition) -> APIRouter:
    # Built once: both follow from code that cannot change while the process runs.
    document = service_document(definition)
    schemas = event_schemas()
    router = api_router(tags=["event contract"], dependencies=[PUBLIC])

    @router.get(
        "/asyncapi.json",
        summary="AsyncAPI 3.0 document of the topics this service sends to and receives from",
        response_description="The AsyncAPI document; the whole stream's is in `docs/asyncapi.json`.",
    )
    async def asyncapi() -> dict[str, Any]:
        return document

    @router.get(
        "/schemas/events/{event_type}/v{version}.json",
        summary="JSON Schema of one event type's data at one schema version",
        description=(
            "Where a record's `ce_dataschema` (`urn:crm:schema:<type>:v<version>`) points; the schema's "
            "`$id` is that URN. The payload is the record's value: the event's data without `type`, "
            "which travels in `ce_type`."
        ),
        response_class=JSONSchemaResponse,
        responses={404: problem_doc("No such event type, or not at that schema version.")},
    )
    async def event_schema(event_type: str, version: int) -> JSONSchemaResponse:
        schema = schemas.get(schema_path(event_type, version))
        if schema is None:
            raise HTTPException(404, f"No schema for {event_type} at version {version}.")
        return JSONSchemaResponse(schema)

    return router
