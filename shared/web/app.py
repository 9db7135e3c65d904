"""The app factory: every service gets the same health, readiness, metrics, errors and request ids."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.observability import MetricsMiddleware
from shared.runtime import ServiceDefinition, ServiceRuntime
from shared.web.auth import PUBLIC
from shared.web.contract import contract_router
from shared.web.encoding import GzipRequestMiddleware
from shared.web.keys import router as keys_router
from shared.web.limits import BodyLimitMiddleware
from shared.web.problems import (
    PROBLEM_BASE,
    Problem,
    install_problem_handlers,
    problem_doc,
    problem_response,
    with_problem_schemas,
)
from shared.web.request_id import RequestIdMiddleware
from shared.web.routing import api_router, unguarded_routes


def _operations_router(runtime: ServiceRuntime) -> APIRouter:
    # Public: probes and scrapers carry no key.
    router = api_router(tags=["operations"], dependencies=[PUBLIC])

    @router.get("/healthz", summary="Liveness: the process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": runtime.name}

    @router.get(
        "/readyz",
        summary="Readiness: the database answers",
        description=(
            "200 while the service can accept requests, which needs its database only: with the event "
            "bus away, writes still commit into the outbox and are published once it is back. Then "
            "`status` is `degraded` and `checks.bus` is `unreachable` (also `crm_bus_up` = 0)."
        ),
        responses={503: problem_doc("The database is unreachable.")},
    )
    async def readyz(request: Request) -> Any:
        database_ok = await runtime.database.ping(timeout_s=2.0)
        checks = {
            "database": "ok" if database_ok else "unreachable",
            "bus": "ok" if runtime.bus_up else "unreachable",
        }
        if not database_ok:
            problem = Problem(
                type=PROBLEM_BASE + "not-ready",
                title="Not ready",
                status=503,
                detail="Unreachable: database.",
            )
            return problem_response(request, problem)
        status = "ready" if runtime.bus_up else "degraded"
        return {"status": status, "service": runtime.name, "checks": checks}

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
    # Added innermost first: the request id and metrics see every answer, the body limit's too. The
    # body limit counts the bytes as they come; unpacking a gzip body is bounded by the same figure.
    app.add_middleware(GzipRequestMiddleware, max_bytes=live.platform.max_body_bytes)
    app.add_middleware(BodyLimitMiddleware, max_bytes=live.platform.max_body_bytes)
    app.add_middleware(MetricsMiddleware, service=definition.name)
    app.add_middleware(RequestIdMiddleware)
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_problem_schemas(default_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    routers = [_operations_router(live), contract_router(definition), keys_router, *definition.routers]
    if wrong := unguarded_routes([route for router in routers for route in router.routes]):
        raise TypeError(f"{definition.name}: every route must pass through the edge: " + "; ".join(wrong))
    for router in routers:
        app.include_router(router)
    return app
