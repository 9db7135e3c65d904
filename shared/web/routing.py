"""The edge every route passes through before its endpoint runs.

`api_router()` builds routers whose routes are `ApiRoute`s. In order, an `ApiRoute`:
1. checks the caller's API key and the route's scope (401, 403; see `shared.web.auth`);
2. takes a token from the key's bucket for that scope (429 with `Retry-After`);
3. for a route that takes a body, checks its content type (415; JSON unless the route says otherwise
   with `openapi_extra={"x-content-types": [...]}`) and its size against the route's own limit (413;
   `openapi_extra={"x-max-body-bytes": n}`); `CRM_MAX_BODY_BYTES` bounds every route before that
   (`shared.web.limits`);
4. runs a POST that carries `Idempotency-Key` at most once (see `shared.web.idempotency`).
A route for callers that can only fire a URL (affiliate trackers' postbacks) may also take the key as a
`key` query parameter, with `openapi_extra={"x-key-in-query": True}`; a header wins when both come.
Access logs never show that parameter's value (`shared.observability.RedactQuerySecrets`).
All of it happens before the body is parsed, so a caller without a key learns nothing of the route.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from shared.auth.principal import Principal
from shared.runtime import ServiceRuntime
from shared.settings import UNAUTHENTICATED
from shared.web.auth import accepts_write_key, is_authorization, is_public_marker, opens_to_affiliates
from shared.web.idempotency import HEADER as IDEMPOTENCY_HEADER
from shared.web.idempotency import checked_key, run_once
from shared.web.limits import retry_after_header
from shared.web.problems import PROBLEM_RESPONSES, SEGMENT_SHAPED, ProblemError, answer_for, problem_doc

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_JSON_TYPES = ("application/json",)
_WWW_AUTHENTICATE = 'Bearer realm="crm"'
KEY_QUERY_PARAMETER = "key"


@dataclass(frozen=True)
class Access:
    public: bool
    scopes: tuple[str, ...]
    write_key: bool = False
    """The key may come as HTTP Basic user name (`shared.web.auth.requires_write_key`)."""
    affiliate_keys: bool = False
    """Keys bound to an affiliate may call it (`requires(..., affiliate_keys=True)`, `AffiliateDep`)."""


def _access(dependant: Dependant) -> Access:
    public = False
    write_key = False
    affiliate_keys = False
    scopes: list[str] = []
    pending = list(dependant.dependencies)
    while pending:
        dependency = pending.pop()
        if is_public_marker(dependency.call):
            public = True
        elif is_authorization(dependency.call):
            scopes.extend(dependency.own_oauth_scopes or ())
            write_key = write_key or accepts_write_key(dependency.call)
        affiliate_keys = affiliate_keys or opens_to_affiliates(dependency.call)
        pending.extend(dependency.dependencies)
    return Access(
        public=public, scopes=tuple(sorted(set(scopes))), write_key=write_key, affiliate_keys=affiliate_keys
    )


def _presented_key(authorization: str, *, write_key: bool) -> str | None:
    """The API key in an `Authorization` header: `Bearer <key>`, or where the route takes a write key,
    `Basic base64(<key>:)` (the password is ignored; tracking libraries send it empty)."""
    scheme, _, credentials = authorization.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer" and credentials:
        return credentials
    if write_key and scheme.lower() == "basic" and credentials:
        try:
            user, _, _password = base64.b64decode(credentials, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user.strip() or None
    return None


def _documented_answers(
    path: str, methods: set[str], dependencies: Sequence[Any]
) -> dict[int | str, dict[str, Any]]:
    # FastAPI would document its own JSON 422 for any route with parameters; ours are problem documents.
    answers: dict[int | str, dict[str, Any]] = dict(PROBLEM_RESPONSES)
    if "{" in path:
        # Even where the parameter names no stored thing (free text), a segment the server cannot route
        # (a control character) is answered 404 before the route is reached.
        answers[404] = problem_doc("Not found, or a path segment the server cannot route.")
    if not any(is_public_marker(getattr(dependency, "dependency", None)) for dependency in dependencies):
        answers[401] = problem_doc("No API key, or one that is unknown, revoked or expired.")
        answers[403] = problem_doc("The key lacks the scope this route needs; `detail` names it.")
        answers[429] = problem_doc("Over the key's rate for this scope; retry after `Retry-After` seconds.")
    if methods & _BODY_METHODS:
        answers[413] = problem_doc("The body is larger than this route takes.")
        answers[415] = problem_doc("The body is not in a content type this route takes (JSON).")
    return answers


_IDEMPOTENCY_ANSWERS: dict[int | str, dict[str, Any]] = {
    409: problem_doc("A request with this Idempotency-Key is still running; retry after `Retry-After`."),
    422: problem_doc("Invalid input, or an Idempotency-Key used before with another request."),
}


_IDEMPOTENCY_PARAMETER = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": (
        "Any unique value (a UUID) to make a retry safe: a repeat returns the first answer, marked "
        "`Idempotent-Replayed: true`. Kept for 24 hours by default."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
}


_KEY_PARAMETER = {
    "name": KEY_QUERY_PARAMETER,
    "in": "query",
    "required": False,
    "description": "The API key, for callers that can only fire a URL; `Authorization: Bearer` is better "
    "where it can be sent (a URL ends up in more places than a header). Access logs never show it.",
    "schema": {"type": "string"},
}


class ApiRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        methods = {method.upper() for method in kwargs.get("methods") or ()}
        if (kwargs.get("openapi_extra") or {}).get("x-key-in-query"):
            extra = dict(kwargs["openapi_extra"])
            extra["parameters"] = [*extra.get("parameters", []), _KEY_PARAMETER]
            kwargs["openapi_extra"] = extra
        edge = _documented_answers(path, methods, kwargs.get("dependencies") or ())
        kwargs["responses"] = {**edge, **(kwargs.get("responses") or {})}
        if "POST" in methods and (kwargs.get("openapi_extra") or {}).get("x-idempotency", True) is not False:
            kwargs["responses"] = {**_IDEMPOTENCY_ANSWERS, **kwargs["responses"]}
            extra = dict(kwargs.get("openapi_extra") or {})
            extra["parameters"] = [*extra.get("parameters", []), _IDEMPOTENCY_PARAMETER]
            kwargs["openapi_extra"] = extra
        super().__init__(path, endpoint, **kwargs)

    @cached_property
    def access(self) -> Access:
        return _access(self.dependant)

    @cached_property
    def idempotent(self) -> bool:
        # A route opts out when its answer must not be kept, e.g. one that shows a secret once.
        return (
            "POST" in (self.methods or ())
            and (self.openapi_extra or {}).get("x-idempotency", True) is not False
        )

    @cached_property
    def key_in_query(self) -> bool:
        return bool((self.openapi_extra or {}).get("x-key-in-query", False))

    @cached_property
    def max_body_bytes(self) -> int | None:
        value = (self.openapi_extra or {}).get("x-max-body-bytes")
        return int(value) if value is not None else None

    @cached_property
    def content_types(self) -> tuple[str, ...]:
        return tuple((self.openapi_extra or {}).get("x-content-types", _JSON_TYPES))

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def through_the_edge(request: Request) -> Response:
            runtime = request.app.state.runtime
            assert isinstance(runtime, ServiceRuntime)
            if self.access.write_key:
                setattr(request.state, SEGMENT_SHAPED, True)
            principal = await self._authorize(request, runtime)
            if self.body_field is not None and request.method in _BODY_METHODS:
                await self._check_body(request)
            key = request.headers.get(IDEMPOTENCY_HEADER)
            if key is None or not self.idempotent or principal is None:
                return await handle(request)
            return await run_once(
                runtime.idempotency,
                request,
                principal.key_id,
                checked_key(key),
                lambda: _answered(handle, request),
            )

        return through_the_edge

    async def _authorize(self, request: Request, runtime: ServiceRuntime) -> Principal | None:
        access = self.access
        if access.public:
            return None
        token = _presented_key(request.headers.get("authorization", ""), write_key=access.write_key)
        if token is None and self.key_in_query:
            token = request.query_params.get(KEY_QUERY_PARAMETER) or None
        if token is None:
            raise ProblemError(
                401,
                "Unauthorized",
                slug="unauthorized",
                detail="Send an API key: `Authorization: Bearer crm_…`"
                + (" or as the write key, HTTP Basic with an empty password." if access.write_key else "")
                + (f" or as the `{KEY_QUERY_PARAMETER}` query parameter." if self.key_in_query else "."),
                headers={"WWW-Authenticate": _WWW_AUTHENTICATE},
            )
        principal = runtime.keys.known(token)
        client = request.client.host if request.client else "unknown"
        if principal is None:
            # A key that costs a lookup. An address that keeps presenting bad keys is slowed down
            # before each of them does; keys answered from the cache are not held up.
            if wait := runtime.rate_limiter.wait(client, UNAUTHENTICATED):
                raise _too_many(wait, "Too many requests with bad API keys from this address")
            principal = await runtime.keys.authenticate(token)
        if principal is None:
            runtime.rate_limiter.take(client, UNAUTHENTICATED)
            raise ProblemError(
                401,
                "Unauthorized",
                slug="unauthorized",
                detail="The API key is unknown, revoked or expired.",
                headers={"WWW-Authenticate": f'{_WWW_AUTHENTICATE}, error="invalid_token"'},
            )
        if principal.affiliate_id is not None and not access.affiliate_keys:
            raise ProblemError(
                403,
                "Forbidden",
                slug="forbidden",
                detail="This route is not open to a key bound to an affiliate; its own data is under /v1/me.",
            )
        for scope in access.scopes:
            if not principal.allows(scope):
                raise ProblemError(
                    403,
                    "Forbidden",
                    slug="forbidden",
                    detail=f"This route needs the scope {scope}, which the key does not have.",
                    headers={"WWW-Authenticate": f'{_WWW_AUTHENTICATE}, error="insufficient_scope"'},
                    required_scope=scope,
                )
        request.state.principal = principal
        for scope in access.scopes:
            if wait := runtime.rate_limiter.take(principal.key_id, scope):
                raise _too_many(wait, f"Over this key's rate for {scope}")
        return principal

    async def _check_body(self, request: Request) -> None:
        declared = request.headers.get("content-length", "")
        if self.max_body_bytes is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise self._too_large()
        body = await request.body()
        if not body:
            return  # the endpoint's validation names the missing body
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if not any(
            media_type == accepted or _is_json_suffix(media_type, accepted) for accepted in self.content_types
        ):
            raise ProblemError(
                415,
                "Unsupported media type",
                slug="unsupported-media-type",
                detail=f"Send the body as {' or '.join(self.content_types)}, not {media_type or 'untyped'}.",
                headers={"Accept-Post": ", ".join(self.content_types)},
            )
        if self.max_body_bytes is not None and len(body) > self.max_body_bytes:
            raise self._too_large()

    def _too_large(self) -> ProblemError:
        return ProblemError(
            413,
            "Request body too large",
            slug="413",
            detail=f"This route takes a body of at most {self.max_body_bytes} bytes.",
        )


def _too_many(wait: float, reason: str) -> ProblemError:
    retry_after = retry_after_header(wait)
    return ProblemError(
        429,
        "Too many requests",
        slug="rate-limited",
        detail=f"{reason}; retry in {retry_after} s.",
        headers={"Retry-After": retry_after},
    )


def _is_json_suffix(media_type: str, accepted: str) -> bool:
    # RFC 6839: application/merge-patch+json and the like are JSON too.
    return (
        accepted == "application/json"
        and media_type.startswith("application/")
        and media_type.endswith("+json")
    )


# Where FastAPI keeps the exit stack of `scope="function"` dependencies (the session that commits).
_FUNCTION_STACK = "fastapi_function_astack"


async def _answered(handle: Callable[[Request], Awaitable[Response]], request: Request) -> Response:
    """The endpoint's answer, with its dependencies closed: its transaction committed (or, on an error,
    rolled back) before the answer is kept. FastAPI would close them only after this handler returns,
    too late: the answer would be kept for a write that then fails, and on SQLite keeping it would wait
    for the write lock the request still holds."""
    outer = request.scope.get(_FUNCTION_STACK)
    try:
        async with AsyncExitStack() as dependencies:
            request.scope[_FUNCTION_STACK] = dependencies
            response = await handle(request)
    except Exception as exc:
        # Raised through the dependencies, so the session rolled back; now answer as the handlers do.
        answer = await answer_for(request, exc)
        if answer is None:
            raise
        return answer
    finally:
        request.scope[_FUNCTION_STACK] = outer
    return response


def api_router(**options: Any) -> APIRouter:
    """An `APIRouter` whose routes pass through the edge; every service router is made with it."""
    return APIRouter(route_class=ApiRoute, **options)


def unguarded_routes(routes: Sequence[Any]) -> list[str]:
    """Routes that would skip the edge, or that declare neither a scope nor PUBLIC."""
    wrong = []
    for route in routes:
        if not isinstance(route, APIRoute):
            continue  # Starlette's own: the docs pages and openapi.json
        if not isinstance(route, ApiRoute):
            wrong.append(f"{route.path}: not made with shared.web.routing.api_router()")
        elif not route.access.public and not route.access.scopes:
            wrong.append(f"{route.path}: declares neither requires(<scope>) nor PUBLIC")
        elif route.access.public and route.access.scopes:
            wrong.append(f"{route.path}: declares both PUBLIC and requires(<scope>)")
    return wrong
