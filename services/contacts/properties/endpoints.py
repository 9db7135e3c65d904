from typing import Annotated

from fastapi import Depends, Query, Request, Response, status

from services.contacts.properties import service
from services.contacts.properties.repository import BY_KEY
from services.contacts.properties.schemas import ObjectType, PropertyCreate, PropertyPatch, PropertyRead
from shared.pagination import PageRequest
from shared.web.auth import requires
from shared.web.deps import ReadSessionDep, SessionDep
from shared.web.pagination import Page, page_request, paginated
from shared.web.problems import PROBLEM_RESPONSES, problem_doc
from shared.web.routing import api_router

router = api_router(prefix="/v1/properties", tags=["properties"])

_NOT_FOUND = {404: problem_doc("No such property."), **PROBLEM_RESPONSES}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Define a custom property",
    description="Adds a typed property to contacts, companies or deals: `string`, `number`, `bool`, "
    "`date`, `enum` or `multi_enum`. Records then carry it in `properties`, validated on every write, "
    "and searches filter and sort on it as `properties.<key>`.",
    responses={409: problem_doc("The key is taken for this object type."), **PROBLEM_RESPONSES},
    dependencies=[requires("contacts:write")],
)
async def create_property(
    body: PropertyCreate, session: SessionDep, request: Request, response: Response
) -> PropertyRead:
    definition = await service.create_property(session, body)
    response.headers["Location"] = str(
        request.url_for("get_property", object_type=definition.object_type, key=definition.key)
    )
    return PropertyRead.model_validate(definition)


@router.get(
    "",
    summary="List custom properties",
    description="By object type, then key. Cursor-paginated.",
    responses=PROBLEM_RESPONSES,
    dependencies=[requires("contacts:read")],
)
async def list_properties(
    request: Request,
    response: Response,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(BY_KEY))],
    object_type: Annotated[ObjectType | None, Query(description="Only this object type's.")] = None,
) -> Page[PropertyRead]:
    found = await service.list_properties(session, object_type, page)
    return paginated(request, response, found, PropertyRead.model_validate)


@router.get(
    "/{object_type}/{key}",
    summary="Get a custom property",
    responses=_NOT_FOUND,
    dependencies=[requires("contacts:read")],
)
async def get_property(object_type: ObjectType, key: str, session: ReadSessionDep) -> PropertyRead:
    return PropertyRead.model_validate(await service.get_property(session, object_type, key))


@router.patch(
    "/{object_type}/{key}",
    summary="Update a custom property",
    description="Label, description, `personal_data`, and options: added freely, removed only while "
    "no record holds them (else 422 on `options`). Key and type never change.",
    responses=_NOT_FOUND,
    dependencies=[requires("contacts:write")],
)
async def update_property(
    object_type: ObjectType, key: str, body: PropertyPatch, session: SessionDep
) -> PropertyRead:
    return PropertyRead.model_validate(await service.update_property(session, object_type, key, body))
