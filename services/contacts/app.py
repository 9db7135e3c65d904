"""People, companies, deals and pipelines, lifecycle stages, consent, segments, identities, and what
people say: notes, reviews, ratings, feedback, suggestions."""

from pathlib import Path

from fastapi import FastAPI

from services.contacts.activity.handlers import ACTIVITY_CONSUMER
from services.contacts.companies.endpoints import router as companies_router
from services.contacts.consents.endpoints import router as consents_router
from services.contacts.contacts.endpoints import router as contacts_router
from services.contacts.db import Base, tables
from services.contacts.deals.endpoints import router as deals_router
from services.contacts.duplicates.endpoints import router as duplicates_router
from services.contacts.entries.endpoints import router as entries_router
from services.contacts.erasure.endpoints import router as erasure_router
from services.contacts.erasure.handlers import ERASURE_CONSUMER
from services.contacts.exports.endpoints import router as exports_router
from services.contacts.merges.endpoints import router as merges_router
from services.contacts.pipelines.endpoints import router as pipelines_router
from services.contacts.properties.endpoints import router as properties_router
from services.contacts.segments.endpoints import router as segments_router
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
    # Exports first: `/v1/contacts/export` must not be taken for a contact id.
    routers=[
        exports_router,
        contacts_router,
        consents_router,
        duplicates_router,
        merges_router,
        entries_router,
        erasure_router,
        companies_router,
        pipelines_router,
        deals_router,
        properties_router,
        segments_router,
    ],
    consumers=[ERASURE_CONSUMER, ACTIVITY_CONSUMER],
)


def create_app(runtime: ServiceRuntime | None = None) -> FastAPI:
    return create_service_app(DEFINITION, runtime)
