"""Serve one service's real ASGI app in-process, over httpx, with its lifespan (migrations, workers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from shared.bus.base import EventBus
from shared.runtime import ServiceDefinition, ServiceRuntime
from shared.settings import PlatformSettings
from shared.testing.templates import fill_from_template
from shared.web.app import create_service_app

# The admin key the apps under test accept; the client `service_client` yields sends it.
TEST_BOOTSTRAP_KEY = "crm-test-bootstrap-key"
ADMIN_HEADERS = {"Authorization": f"Bearer {TEST_BOOTSTRAP_KEY}"}


@asynccontextmanager
async def service_client(
    definition: ServiceDefinition,
    *,
    database_url: str,
    bus: EventBus,
    data_dir: Path,
    relay: bool = True,
    consumers: bool = True,
    **platform_options: Any,
) -> AsyncIterator[tuple[httpx.AsyncClient, ServiceRuntime]]:
    """The app and its runtime; `platform_options` override platform settings (rate limits, sizes).

    A SQLite database not made yet is first copied from the session's migrated template (`templates.py`)."""
    await fill_from_template(definition, database_url)
    platform = PlatformSettings(
        data_dir=data_dir, bootstrap_api_key=SecretStr(TEST_BOOTSTRAP_KEY), **platform_options
    )
    settings = definition.settings_class(database_url=database_url, run_relay=relay, run_consumers=consumers)
    runtime = ServiceRuntime(definition, platform=platform, settings=settings, bus=bus)
    app = create_service_app(definition, runtime)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=ADMIN_HEADERS
        ) as client,
    ):
        yield client, runtime
