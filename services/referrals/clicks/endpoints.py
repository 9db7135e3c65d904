"""`GET /r/{code}`, the click redirect, and `GET /v1/clicks`, the clicks recorded."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import AwareDatetime

from services.referrals.clicks import service
from services.referrals.clicks.bots import is_bot
from services.referrals.clicks.cache import CLICK_PARAMETER, UNKNOWN, LinkTarget
from services.referrals.clicks.path import ClickPath, click_path
from services.referrals.clicks.repository import NEWEST_FIRST
from services.referrals.clicks.schemas import ClickRead
from services.referrals.clicks.service import ClickLine
from shared.pagination import PageRequest
from shared.runtime import ServiceRuntime
from shared.web.auth import PUBLIC, requires
from shared.web.deps import ReadSessionDep, get_runtime
from shared.web.pagination import Page, page_request, paginated
from shared.web.problems import PROBLEM_RESPONSES
from shared.web.routing import api_router

log = logging.getLogger(__name__)


@asynccontextmanager
async def _draining(app: FastAPI) -> AsyncIterator[None]:
    """The click journal's drain, for as long as the app serves. Tied to the app that serves the
    redirect rather than to the consumers (`RUN_CONSUMERS`): a journal can only be drained by the
    process writing it while that process lives (it holds the file's lock)."""
    runtime = app.state.runtime
    assert isinstance(runtime, ServiceRuntime)
    stop = asyncio.Event()
    task = asyncio.create_task(service.drain_clicks(runtime, stop), name=f"{runtime.name}:click-journal")
    try:
        yield
    finally:
        stop.set()
        # The drain applies what is left, then returns; a database that hangs must not hold the stop.
        done, _ = await asyncio.wait([task], timeout=_STOP_TIMEOUT_S)
        if not done:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        elif (error := task.exception()) is not None:
            log.error("the click journal's drain stopped: %r", error, exc_info=error)


redirect_router = api_router(tags=["click redirect"], lifespan=_draining)
router = api_router(prefix="/v1/clicks", tags=["clicks"])

VISITOR_COOKIE = "crm_visitor"
_CODE = re.compile(r"^[A-Za-z0-9_-]{3,64}$")
_VISITOR = re.compile(r"^[A-Za-z0-9_-]{8,32}$")
_VISITOR_SECONDS = 365 * 24 * 3600
_STOP_TIMEOUT_S = 15.0
_NOT_FOUND_PAGE = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>Link not found</title>"
    "<h1>Link not found</h1><p>This link does not exist. Check that it was copied whole.</p></html>"
)
_UNAVAILABLE_PAGE = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>Try again</title>"
    "<h1>Try again in a moment</h1><p>This link cannot be followed right now.</p></html>"
)


def _page(body: str, status: int, **headers: str) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store", **headers})


async def _target(path: ClickPath, code: str) -> LinkTarget | None:
    cached = path.cache.get(code)
    if cached is UNKNOWN:
        return None
    if isinstance(cached, LinkTarget):
        return cached
    target = await service.find_target(path, code)
    path.cache.put(code, UNKNOWN if target is None else target)
    return target


def _cut(value: str | None, length: int) -> str | None:
    return None if value is None else value[:length]


@redirect_router.get(
    "/r/{code}",
    summary="Follow a tracking link",
    description="Records the click (time, keyed hash of the client address, user agent, referrer, landing "
    "URL) and answers 302 to the link's destination, with its UTM tags and `crm_click_id=<click id>` "
    "added to the destination's own query. Sets the cookies `crm_click_id` (readable by the shop's "
    "scripts, for the program's window) and `crm_visitor` (HttpOnly, a year; kept across clicks, so one "
    "browser's clicks are known as one visitor's). No key needed.\n\n"
    "The click is written to a journal on local disk before the answer and reaches the database and "
    "`crm.click.recorded` moments later; `GET /v1/clicks` shows it then. Known crawlers and link checkers "
    "are recorded with `is_bot` and never counted. Archived links, links of archived programs and of "
    "suspended affiliates still redirect and record the click; they credit nothing. An unknown code is "
    "a plain HTML 404 page.",
    status_code=302,
    response_class=Response,
    responses={
        302: {"description": "To the destination; `Location` has it, with the UTM tags and the click id."},
        404: {
            "description": "No link has this code: a plain HTML page. (A path no route can take at all, "
            "such as one with a control character under `crm dev`, gets the server's problem document.)",
            "content": {"text/html": {}, "application/problem+json": {}},
        },
        503: {"description": "The link is not in the cache and the database cannot be reached."},
    },
    dependencies=[PUBLIC],
)
async def follow_link(code: str, request: Request) -> Response:
    if not _CODE.match(code):
        return _page(_NOT_FOUND_PAGE, 404)
    path = click_path(get_runtime(request))
    try:
        target = await _target(path, code)
    except Exception as exc:  # the database, on a cache miss: say so without a 500
        log.warning("redirect %s: the link could not be read (%r)", code, exc)
        return _page(_UNAVAILABLE_PAGE, 503, **{"Retry-After": "5"})
    if target is None:
        return _page(_NOT_FOUND_PAGE, 404)
    headers = request.headers
    click_id = secrets.token_urlsafe(12)
    visitor = request.cookies.get(VISITOR_COOKIE)
    if visitor is None or not _VISITOR.match(visitor):
        visitor = secrets.token_urlsafe(12)
    user_agent = headers.get("user-agent")
    client = request.client.host if request.client else None
    landing = target.landing_url(click_id)
    line = ClickLine(
        id=click_id,
        visitor_id=visitor,
        link_id=target.link_id,
        code=target.code,
        program_id=target.program_id,
        affiliate_id=target.affiliate_id,
        clicked_at=datetime.now(UTC),
        ip_hash=path.hasher.ip(client) if client else None,
        user_agent=_cut(user_agent, 512),
        referrer=_cut(headers.get("referer"), 2048),
        landing_url=landing[:4096],
        is_bot=is_bot(user_agent),
    )
    try:
        path.journal.append(line.encode())
    except OSError as exc:
        # The visitor still gets where they were going; this click is the one thing lost.
        log.error("redirect %s: the click could not be journaled (%r)", code, exc)
    else:
        path.journaled += 1
        path.wake.set()
    # Set-Cookie written out here: Starlette's `set_cookie` goes through `http.cookies`, which costs as
    # much as the rest of the redirect. Both values are URL-safe, so nothing needs quoting.
    secure = "; Secure" if request.scope.get("scheme") == "https" else ""
    click_cookie = f"{CLICK_PARAMETER}={click_id}; Max-Age={target.window_days * 86400}; Path=/; SameSite=lax"
    visitor_cookie = f"{VISITOR_COOKIE}={visitor}; HttpOnly; Max-Age={_VISITOR_SECONDS}; Path=/; SameSite=lax"
    response = Response(status_code=302)
    response.raw_headers += [
        (b"location", landing.encode("latin-1")),
        (b"cache-control", b"no-store"),
        (b"set-cookie", f"{click_cookie}{secure}".encode("latin-1")),
        (b"set-cookie", f"{visitor_cookie}{secure}".encode("latin-1")),
    ]
    return response


@router.get(
    "",
    summary="List clicks",
    description="Newest first, cursor-paginated; optionally of one link, affiliate or program, and from "
    "`since` (inclusive) to `until` (exclusive). Bots are listed too, with `is_bot`. A click appears "
    "moments after its redirect (it goes through the click journal).",
    responses=PROBLEM_RESPONSES,
    dependencies=[requires("referrals:read")],
)
async def list_clicks(
    request: Request,
    response: Response,
    session: ReadSessionDep,
    page: Annotated[PageRequest, Depends(page_request(NEWEST_FIRST))],
    link_id: Annotated[uuid.UUID | None, Query(description="Only this link's clicks.")] = None,
    affiliate_id: Annotated[uuid.UUID | None, Query(description="Only this affiliate's clicks.")] = None,
    program_id: Annotated[uuid.UUID | None, Query(description="Only this program's clicks.")] = None,
    since: Annotated[AwareDatetime | None, Query(description="Clicked at or after this time.")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Clicked before this time.")] = None,
) -> Page[ClickRead]:
    found = await service.list_clicks(
        session,
        page,
        link_id=link_id,
        affiliate_id=affiliate_id,
        program_id=program_id,
        since=since,
        until=until,
    )
    return paginated(request, response, found, ClickRead.model_validate)
