"""Embedded mode: all four services in one process, each mounted under `/<service>`, sharing one bus."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from services.registry import SERVICES
from shared.bus.factory import create_bus
from shared.runtime import ServiceRuntime
from shared.settings import PlatformSettings, load_settings
from shared.web.app import create_service_app
from shared.web.problems import install_problem_handlers


def create_embedded_app(platform: PlatformSettings | None = None) -> FastAPI:
    platform = platform or load_settings(PlatformSettings)
    bus = create_bus(platform)
    # Runtimes are built now so that a bad setting stops start-up before the server binds its port.
    service_apps = {
        name: create_service_app(definition, ServiceRuntime(definition, platform=platform, bus=bus))
        for name, definition in SERVICES.items()
    }

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await bus.start()
        try:
            # Mounted apps' lifespans are not run by Starlette; run each one here, stopping in reverse.
            async with AsyncExitStack() as stack:
                for service_app in service_apps.values():
                    await stack.enter_async_context(service_app.router.lifespan_context(service_app))
                yield
        finally:
            await bus.stop()

    root = FastAPI(
        title="CRM (embedded)",
        description="All four services in one process. Each service's API and docs live under its prefix.",
        lifespan=lifespan,
    )

    # A path no service takes (or one a mount cannot match) still gets a problem document.
    install_problem_handlers(root)

    @root.get("/", summary="Where each service lives")
    async def index() -> dict[str, Any]:
        return {
            "mode": "embedded",
            "bus": platform.bus,
            "services": {name: {"base": f"/{name}", "docs": f"/{name}/docs"} for name in service_apps},
        }

    @root.get("/healthz", summary="Liveness of the embedded process")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for name, service_app in service_apps.items():
        root.mount(f"/{name}", service_app)
    return root
