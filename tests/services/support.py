"""Helpers for service tests that need the whole embedded app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from pydantic import SecretStr

from services.embedded import create_embedded_app
from shared.settings import PlatformSettings
from shared.testing.apps import ADMIN_HEADERS, TEST_BOOTSTRAP_KEY


@asynccontextmanager
async def embedded_client(data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The embedded app (all four services under `/<service>`, one bus) in-process, started, with a
    client that sends the test's admin key."""
    app = create_embedded_app(
        PlatformSettings(data_dir=data_dir, bootstrap_api_key=SecretStr(TEST_BOOTSTRAP_KEY))
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=ADMIN_HEADERS
        ) as client,
    ):
        yield client
