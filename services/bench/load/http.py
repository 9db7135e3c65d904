"""Keep-alive HTTP/1.1 connections to one server for JSON POSTs.

A few lines of asyncio streams instead of a general client: httpx spends about 2.5 ms of CPU per
request, which at a few hundred requests a second would take a core of its own from the 2-core machine
the server under test runs on. This costs a small fraction of that.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

from services.bench.servers import BENCH_API_KEY

# uvicorn closes a keep-alive connection after 5 s without a request; one idle for longer than this is
# not reused, so that no request is written into a connection the server is closing.
MAX_IDLE_S = 2.0

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class HttpError(Exception):
    """The server's answer could not be read as an HTTP/1.1 response with a Content-Length."""


class JsonPoster:
    def __init__(self, url: str, *, max_connections: int = 256, method: str = "POST") -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"only http:// URLs are supported: {url}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self._head = (
            f"{method} {parts.path or '/'} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {BENCH_API_KEY}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self._idle: list[tuple[Connection, float]] = []  # with the time each fell idle; latest last
        self._slots = asyncio.Semaphore(max_connections)

    async def _connection(self) -> Connection:
        while self._idle:
            (reader, writer), idle_since = self._idle.pop()
            if time.monotonic() - idle_since < MAX_IDLE_S and not reader.at_eof():
                return reader, writer
            writer.close()
        return await asyncio.open_connection(self.host, self.port)

    async def post(self, body: bytes) -> int:
        """Send one request and read its whole response; returns the status code."""
        async with self._slots:
            reader, writer = await self._connection()
            try:
                writer.write(self._head + str(len(body)).encode() + b"\r\n\r\n" + body)
                status, keep_alive = await self._read_response(reader)
            except BaseException:
                writer.close()
                raise
            if keep_alive:
                self._idle.append(((reader, writer), time.monotonic()))
            else:
                writer.close()
            return status

    @staticmethod
    async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        try:
            status = int(status_line.split(" ", 2)[1])
        except (IndexError, ValueError) as exc:
            raise HttpError(f"bad status line {status_line!r}") from exc
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines if line)
        }
        if "content-length" not in headers:
            raise HttpError("response without Content-Length")
        await reader.readexactly(int(headers["content-length"]))
        return status, headers.get("connection", "").lower() != "close"

    async def close(self) -> None:
        writers = [writer for (_reader, writer), _since in self._idle]
        self._idle = []
        for writer in writers:
            writer.close()
        await asyncio.gather(*(writer.wait_closed() for writer in writers), return_exceptions=True)
