"""`Idempotency-Key` for POST, after the IETF draft "The Idempotency-Key HTTP Header Field".

- The first request with a key runs and its answer is kept (status, body and the headers that describe
  the resource) for `CRM_IDEMPOTENCY_TTL_HOURS`.
- A repeat with the same body gets that answer again, marked `Idempotent-Replayed: true`.
- The same key with a different request (method, path, query or body) is a 422.
- A repeat while the first is still running is a 409 with `Retry-After`.
- Answers that say nothing happened are not kept, so a retry runs again: 5xx, 401, 403, 429, and
  the answer to a dry run (`keep_no_answer`): it tells what a write would do, not what was done.

Keys belong to the caller's API key, so two callers never see each other's answers; a key is checked
and its rate taken before a kept answer is given. See `shared.idempotency` for how answers are kept.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from shared.idempotency import IdempotencyStore
from shared.web.problems import FieldProblem, ProblemError

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Only what describes the result; a replay gets its own request id and date.
_KEPT_HEADERS = ("content-type", "location", "etag", "link")
_NOT_KEPT_STATUSES = {401, 403, 429}
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
# Request state: this request's answer is not to be kept (see `keep_no_answer`).
_NO_ANSWER_KEPT = "crm_no_answer_kept"


def keep_no_answer(request: Request) -> None:
    """Keep no answer for this request's key: it wrote nothing (a dry run), so a repeat must run again,
    and the same key may still carry the real write."""
    setattr(request.state, _NO_ANSWER_KEPT, True)


def fingerprint(request: Request, body: bytes) -> str:
    digest = hashlib.sha256(f"{request.method} {request.url.path}?{request.url.query}\n".encode())
    digest.update(body)
    return digest.hexdigest()


def checked_key(value: str) -> str:
    if not _VALID_KEY.match(value):
        raise ProblemError(
            422,
            "Invalid Idempotency-Key",
            slug="validation",
            detail="Idempotency-Key must be 1 to 255 visible ASCII characters, e.g. a UUID.",
            errors=[
                FieldProblem(
                    field=HEADER,
                    location="header",
                    message="1 to 255 visible ASCII characters",
                    code="invalid",
                )
            ],
        )
    return value


async def run_once(
    store: IdempotencyStore,
    request: Request,
    principal: str,
    key: str,
    answer: Callable[[], Awaitable[Response]],
) -> Response:
    """Run `answer` at most once per (caller, key); repeats get the kept answer."""
    outcome = await store.claim(principal, key, fingerprint(request, await request.body()))
    if outcome.kind == "mismatch":
        raise ProblemError(
            422,
            "Idempotency-Key reused",
            slug="idempotency-key-reused",
            detail="This Idempotency-Key was used with a different request; use a new key for a new request.",
        )
    if outcome.kind == "running":
        raise ProblemError(
            409,
            "Request in progress",
            slug="idempotency-in-progress",
            detail="A request with this Idempotency-Key is still running; retry after it has finished.",
            headers={"Retry-After": "1"},
        )
    if outcome.kind == "replay":
        assert outcome.status is not None
        assert outcome.body is not None
        headers = {**(outcome.headers or {}), REPLAYED_HEADER: "true"}
        return Response(outcome.body, status_code=outcome.status, headers=headers)
    try:
        response = await answer()
    except BaseException:
        await store.release(principal, key)
        raise
    if (
        response.status_code >= 500
        or response.status_code in _NOT_KEPT_STATUSES
        or not hasattr(response, "body")
        or getattr(request.state, _NO_ANSWER_KEPT, False)
    ):
        await store.release(principal, key)
    else:
        headers = {name: value for name, value in response.headers.items() if name in _KEPT_HEADERS}
        await store.complete(
            principal, key, status=response.status_code, headers=headers, body=bytes(response.body)
        )
    return response
