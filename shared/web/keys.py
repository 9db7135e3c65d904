"""`/v1/keys`: create, list, read and revoke API keys. Every service serves it; all need `admin`.

A key created or revoked through any service is announced on `crm.access` and so reaches every other.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Path, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from shared.auth import keys
from shared.auth.principal import ADMIN, SCOPES
from shared.pagination import PageRequest
from shared.web.auth import requires
from shared.web.deps import ReadSessionDep, RuntimeDep, SessionDep, get_runtime
from shared.web.pagination import DEFAULT_LIMIT, Page, PageCursor, PageLimit, page_from, paginated
from shared.web.problems import PROBLEM_RESPONSES, problem_doc
from shared.web.routing import api_router

router = api_router(prefix="/v1/keys", tags=["api keys"])
KeyId = Annotated[
    str, Path(min_length=1, max_length=32, description="The key's id, e.g. `3f9a1c2b7d4e5f60`.")
]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scopes: list[str] = Field(
        min_length=1, description="What the key may do: " + ", ".join(f"`{scope}`" for scope in SCOPES) + "."
    )
    name: str | None = Field(None, max_length=200, description="Who or what uses the key.")
    affiliate_id: str | None = Field(
        None,
        max_length=100,
        description="Binds the key to one affiliate: it then sees only that affiliate's data.",
    )
    expires_at: datetime | None = Field(None, description="When the key stops working; never when absent.")


class KeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    key_id: str
    name: str | None
    scopes: list[str]
    affiliate_id: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyRead):
    key: str = Field(description="The key itself. It is shown this once and stored only as a hash.")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key",
    description=(
        "Answers with the key itself, once. Every service accepts it within a second. This POST does not "
        "honour `Idempotency-Key`: keeping its answer would keep the key; revoke a key made twice."
    ),
    responses=PROBLEM_RESPONSES,
    openapi_extra={"x-idempotency": False},
    dependencies=[requires(ADMIN)],
)
async def create_key(
    body: KeyCreate, session: SessionDep, runtime: RuntimeDep, request: Request, response: Response
) -> KeyCreated:
    created = await keys.create_key(
        session,
        runtime.definition.access,
        runtime.definition.event_outbox,
        scopes=body.scopes,
        name=body.name,
        affiliate_id=body.affiliate_id,
        expires_at=body.expires_at,
    )
    response.headers["Location"] = str(request.url_for("get_key", key_id=created.key.key_id))
    return KeyCreated(**KeyRead.model_validate(created.key).model_dump(), key=created.token)


def _key_page(request: Request, limit: PageLimit = DEFAULT_LIMIT, cursor: PageCursor = None) -> PageRequest:
    # The order is over this service's own table, so it is built per request, not at import.
    return page_from(keys.oldest_first(get_runtime(request).definition.access), limit, cursor)


@router.get(
    "", summary="List API keys", description="Oldest first, cursor-paginated.", dependencies=[requires(ADMIN)]
)
async def list_keys(
    request: Request,
    response: Response,
    session: ReadSessionDep,
    runtime: RuntimeDep,
    page: Annotated[PageRequest, Depends(_key_page)],
) -> Page[KeyRead]:
    found = await keys.list_keys(session, runtime.definition.access, page)
    return paginated(request, response, found, KeyRead.model_validate)


@router.get(
    "/{key_id}",
    summary="Get an API key",
    responses={404: problem_doc("No such key."), **PROBLEM_RESPONSES},
    dependencies=[requires(ADMIN)],
)
async def get_key(key_id: KeyId, session: ReadSessionDep, runtime: RuntimeDep) -> KeyRead:
    return KeyRead.model_validate(await keys.get_key(session, runtime.definition.access, key_id))


@router.delete(
    "/{key_id}",
    summary="Revoke an API key",
    description="Every service refuses the key within a second. Revoking a revoked key changes nothing.",
    responses={404: problem_doc("No such key."), **PROBLEM_RESPONSES},
    dependencies=[requires(ADMIN)],
)
async def revoke_key(key_id: KeyId, session: SessionDep, runtime: RuntimeDep) -> KeyRead:
    revoked = await keys.revoke_key(
        session, runtime.definition.access, runtime.definition.event_outbox, key_id
    )
    runtime.keys.forget(key_id)
    return KeyRead.model_validate(revoked)
