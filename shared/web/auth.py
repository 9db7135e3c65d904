"""How a route says who may call it, and what an endpoint knows of its caller.

Every route declares exactly one of:
- `dependencies=[requires("contacts:read")]` (or a parameter `principal: Annotated[Principal,
  requires("contacts:write")]` when the endpoint needs the caller), or
- `dependencies=[PUBLIC]` for the few routes anyone may call (health, the click redirect, signed
  postbacks).

A key bound to an affiliate is refused (403) by every route that does not open itself to such keys,
whatever the key's scopes: `requires(scope, affiliate_keys=True)` or an `AffiliateDep` parameter opens a
route. An affiliate's key holds `referrals:read`, and without this rule it would read every affiliate's
data through the staff API; with it, a route added later is closed to affiliates until it says otherwise.

`create_service_app` refuses to start with a route that declares neither. The check itself runs in
`shared.web.routing.ApiRoute`, before the body is read, so a caller without a key learns nothing else.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer

from shared.auth.principal import SCOPES, Principal
from shared.web.problems import ProblemError

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An API key, `Authorization: Bearer crm_…`. Create one with `crm keys create`.",
)


async def _authorized(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    principal = getattr(request.state, "principal", None)
    # ApiRoute has checked the key and the scope already; this only hands the caller over. Without one
    # (a route the edge took for public), refuse rather than run without a caller.
    if not isinstance(principal, Principal):
        raise ProblemError(401, "Unauthorized", slug="unauthorized", detail="This route needs an API key.")
    return principal


async def _authorized_affiliate_too(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    return await _authorized(request, _credentials)


def requires(scope: str, *, affiliate_keys: bool = False) -> Any:
    """The route needs a key holding `scope` (or `admin`); it answers 401 without a key, 403 without
    the scope. Used as a dependency, it also yields the caller's `Principal`.

    `affiliate_keys=True` lets keys bound to an affiliate in as well (posting a conversion, `/v1/me`);
    the endpoint must then keep to that affiliate's own data."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; add it to shared.auth.principal.SCOPES")
    return Security(_authorized_affiliate_too if affiliate_keys else _authorized, scopes=[scope])


_write_key = HTTPBasic(
    auto_error=False,
    scheme_name="writeKey",
    description="As Segment and RudderStack libraries send their write key: HTTP Basic, the API key as the "
    "user name and an empty password. `Authorization: Bearer crm_…` works too.",
)


async def _authorized_by_write_key(
    request: Request,
    _basic: Annotated[HTTPBasicCredentials | None, Depends(_write_key)],
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    return await _authorized(request, _credentials)


def requires_write_key(scope: str) -> Any:
    """As `requires`, for the tracking routes: the key may also come as a write key (HTTP Basic)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; add it to shared.auth.principal.SCOPES")
    return Security(_authorized_by_write_key, scopes=[scope])


def accepts_write_key(call: object) -> bool:
    return call is _authorized_by_write_key


async def _public() -> None:
    """Marks a route that needs no key."""


PUBLIC: Any = Depends(_public)


def is_authorization(call: object) -> bool:
    return call is _authorized or call is _authorized_by_write_key or call is _authorized_affiliate_too


def opens_to_affiliates(call: object) -> bool:
    """The dependency lets keys bound to an affiliate call its route."""
    return call is _authorized_affiliate_too or call is _affiliate


def is_public_marker(call: object) -> bool:
    return call is _public


async def _affiliate(principal: Annotated[Principal, Depends(_authorized)]) -> Principal:
    if principal.affiliate_id is None:
        raise ProblemError(
            403,
            "Forbidden",
            slug="forbidden",
            detail="This route answers for one affiliate; use a key created with --affiliate.",
        )
    return principal


AffiliateDep = Annotated[Principal, Depends(_affiliate)]
"""For `/v1/me/...` routes: the caller must be a key bound to an affiliate; its id scopes the data."""
