"""Compressed request bodies: `Content-Encoding: gzip` is taken on every route and unpacked before the
route sees the body, as tracking libraries send their batches (RudderStack's by default, Segment's when
asked). Unpacking is bounded: a body that unpacks to more than `CRM_MAX_BODY_BYTES` is refused with 413
as soon as it passes the limit, so a small bomb cannot fill the memory. Another encoding is refused
with 415, and a body that is not gzip with 400; both as problems.
"""

from __future__ import annotations

import zlib

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.web.problems import PROBLEM_BASE, Problem, problem_response

_IDENTITY = {b"", b"identity"}
_GZIP = {b"gzip", b"x-gzip"}


class GzipRequestMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        encoding = dict(scope["headers"]).get(b"content-encoding", b"").strip().lower()
        if encoding in _IDENTITY:
            await self.app(scope, receive, send)
            return
        if encoding not in _GZIP:
            await self._refuse(
                scope, receive, send, 415, "Unsupported content encoding", "send it as gzip or plain"
            )
            return
        unpacker = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip header and trailer
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            more = message.get("more_body", False)
            try:
                # At most one byte past the limit: enough to know it is too large, never more in memory.
                body += unpacker.decompress(message.get("body", b""), self.max_bytes + 1 - len(body))
            except zlib.error:
                await self._refuse(scope, receive, send, 400, "Body is not gzip", "it says gzip but is not")
                return
            if len(body) > self.max_bytes:
                await self._refuse(
                    scope,
                    receive,
                    send,
                    413,
                    "Request body too large",
                    f"unpacked, it has more than {self.max_bytes} bytes",
                )
                return
        if not unpacker.eof:
            await self._refuse(scope, receive, send, 400, "Body is not gzip", "the gzip stream ends early")
            return
        headers = [
            (name, value)
            for name, value in scope["headers"]
            if name not in (b"content-encoding", b"content-length")
        ]
        headers.append((b"content-length", str(len(body)).encode()))
        unpacked = bytes(body)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()  # a disconnect, when the app waits for one
            sent = True
            return {"type": "http.request", "body": unpacked, "more_body": False}

        await self.app({**scope, "headers": headers}, replay, send)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, status: int, title: str, why: str
    ) -> None:
        problem = Problem(
            type=PROBLEM_BASE + str(status),
            title=title,
            status=status,
            detail=f"Content-Encoding: {why}.",
        )
        await problem_response(Request(scope), problem)(scope, receive, send)
