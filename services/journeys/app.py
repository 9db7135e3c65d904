"""Touchpoints, identity stitching, the unified timeline per prospect, journey maps and funnels."""

from pathlib import Path

from fastapi import FastAPI

from services.journeys.db import Base, tables
from services.journeys.maps.endpoints import contacts_router as contact_journeys_router
from services.journeys.maps.endpoints import router as journeys_router
from services.journeys.maps.handlers import MAPS_CONSUMER
from services.journeys.performance.endpoints import router as performance_router
from services.journeys.settings import JourneysSettings
from services.journeys.timeline.endpoints import router as timeline_router
from services.journeys.timeline.handlers import TIMELINE_CONSUMER
from services.journeys.touchpoints.endpoints import router as touchpoints_router
from services.journeys.tracking.endpoints import router as tracking_router
from shared.runtime import ServiceDefinition, ServiceRuntime
from shared.web.app import create_service_app

DEFINITION = ServiceDefinition(
    name="journeys",
    title="CRM journeys",
    description=__doc__ or "",
    settings_class=JourneysSettings,
    metadata=Base.metadata,
    migrations_dir=Path(__file__).parent / "migrations",
    outbox=tables.outbox_tables,
    consumer_tables=tables.consumer_tables,
    access=tables.access,
    routers=[
        touchpoints_router,
        tracking_router,
        timeline_router,
        journeys_router,
        contact_journeys_router,
        performance_router,
    ],
    consumers=[TIMELINE_CONSUMER, MAPS_CONSUMER],
)


def create_app(runtime: ServiceRuntime | None = None) -> FastAPI:
    return create_service_app(DEFINITION, runtime)
