"""Body size: a 413 problem for a body over `CRM_MAX_BODY_BYTES`, before any of it is read when it
declares its length, and as soon as it passes the limit when it streams in without one.

Starlette has a body limit of its own, but answers in plain text; a route may still take less with
FastAPI's `max_body_size=` (that answer goes through the problem handlers).
"""

from __future__ import annotations

import math

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.web.problems import PROBLEM_BASE, Problem, problem_response


class BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body too large: at most {limit} bytes.")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            problem = Problem(
                type=PROBLEM_BASE + "413",
                title="Request body too large",
                status=413,
                detail=f"The body may have at most {self.max_bytes} bytes.",
            )
            await problem_response(Request(scope), problem)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Raised inside the body read, so the app's handlers answer with the problem.
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, counted, send)


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
