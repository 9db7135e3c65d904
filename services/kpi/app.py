"""KPI: rollups from every topic, targets, the KPI query API, the dashboard and the KPI topic."""

from pathlib import Path

from fastapi import FastAPI

from services.kpi.db import Base, tables
from services.kpi.settings import KpiSettings
from shared.runtime import ServiceDefinition, ServiceRuntime
from shared.web.app import create_service_app

DEFINITION = ServiceDefinition(
    name="kpi",
    title="CRM kpi",
    description=__doc__ or "",
    settings_class=KpiSettings,
    metadata=Base.metadata,
    migrations_dir=Path(__file__).parent / "migrations",
    outbox=tables.outbox_tables,
    consumer_tables=tables.consumer_tables,
    access=tables.access,
)


def create_app(runtime: ServiceRuntime | None = None) -> FastAPI:
    return create_service_app(DEFINITION, runtime)
