"""The app factory: every service gets the same health, readiness, metrics, errors and request ids."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.observability import MetricsMiddleware
from shared.runtime import ServiceDefinition, ServiceRuntime
from shared.web.problems import (
    PROBLEM_BASE,
    Problem,
    install_problem_handlers,
    problem_doc,
    problem_response,
)
from shared.web.request_id import RequestIdMiddleware


def _operations_router(runtime: ServiceRuntime) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": runtime.name}

    @router.get(
        "/readyz",
        summary="Readiness: database and event bus reachable",
        responses={503: problem_doc("A dependency is unreachable.")},
    )
    async def readyz(request: Request) -> Any:
        checks = {
            "database": "ok" if await runtime.database.ping() else "unreachable",
            "bus": "ok" if await runtime.bus.ping() else "unreachable",
        }
        if all(state == "ok" for state in checks.values()):
            return {"status": "ready", "service": runtime.name, "checks": checks}
        failing = ", ".join(name for name, state in checks.items() if state != "ok")
        problem = Problem(
            type=PROBLEM_BASE + "not-ready", title="Not ready", status=503, detail=f"Unreachable: {failing}."
        )
        return problem_response(request, problem)

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def create_service_app(definition: ServiceDefinition, runtime: ServiceRuntime | None = None) -> FastAPI:
    """Build a service's app. Its lifespan starts and stops the runtime (migrations, relay, consumers)."""
    live = runtime or ServiceRuntime(definition)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await live.start()
        try:
            yield
        finally:
            await live.stop()

    app = FastAPI(
        title=definition.title,
        description=definition.description,
        version="1.0.0",
        lifespan=lifespan,
    )
    app.state.runtime = live
    install_problem_handlers(app)
    app.add_middleware(MetricsMiddleware, service=definition.name)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(_operations_router(live))
    for router in definition.routers:
        app.include_router(router)
    return app
