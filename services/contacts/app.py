"""People, companies, deals and pipelines, lifecycle stages, consent, segments, identities."""

from pathlib import Path

from fastapi import FastAPI

from services.contacts.companies.endpoints import router as companies_router
from services.contacts.contacts.endpoints import router as contacts_router
from services.contacts.db import Base, tables
from services.contacts.deals.endpoints import router as deals_router
from services.contacts.pipelines.endpoints import router as pipelines_router
from services.contacts.settings import ContactsSettings
from shared.runtime import ServiceDefinition, ServiceRuntime
from shared.web.app import create_service_app

DEFINITION = ServiceDefinition(
    name="contacts",
    title="CRM contacts",
    description=__doc__ or "",
    settings_class=ContactsSettings,
    metadata=Base.metadata,
    migrations_dir=Path(__file__).parent / "migrations",
    outbox=tables.outbox_tables,
    consumer_tables=tables.consumer_tables,
    access=tables.access,
    routers=[contacts_router, companies_router, pipelines_router, deals_router],
)


def create_app(runtime: ServiceRuntime | None = None) -> FastAPI:
    return create_service_app(DEFINITION, runtime)
