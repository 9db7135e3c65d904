"""Referrals: programs, affiliates, links, click redirects, postbacks, attribution, commissions, rewards."""

from pathlib import Path

from fastapi import FastAPI

from services.referrals.affiliates import models as _affiliates  # noqa: F401
from services.referrals.affiliates.endpoints import router as affiliates_router
from services.referrals.clicks import models as _clicks  # noqa: F401
from services.referrals.clicks.endpoints import redirect_router
from services.referrals.clicks.endpoints import router as clicks_router
from services.referrals.commissions import models as _commissions  # noqa: F401
from services.referrals.commissions.approval import APPROVAL_WORKER
from services.referrals.commissions.endpoints import router as commissions_router
from services.referrals.conversions import models as _conversions  # noqa: F401
from services.referrals.conversions.endpoints import conversions_router, postbacks_router, sources_router
from services.referrals.db import Base, tables
from services.referrals.links import models as _links  # noqa: F401
from services.referrals.links.endpoints import router as links_router
from services.referrals.me.endpoints import router as me_router
from services.referrals.people.handlers import PEOPLE_CONSUMER
from services.referrals.programs import models as _programs  # noqa: F401
from services.referrals.programs.endpoints import router as programs_router
from services.referrals.purchases.handlers import PURCHASES_CONSUMER
from services.referrals.settings import ReferralsSettings
from shared.runtime import ServiceDefinition, ServiceRuntime
from shared.web.app import create_service_app

DEFINITION = ServiceDefinition(
    name="referrals",
    title="CRM referrals",
    description=__doc__ or "",
    settings_class=ReferralsSettings,
    metadata=Base.metadata,
    migrations_dir=Path(__file__).parent / "migrations",
    outbox=tables.outbox_tables,
    consumer_tables=tables.consumer_tables,
    access=tables.access,
    # The redirect first: the hottest route is matched before the others.
    routers=[
        redirect_router,
        programs_router,
        affiliates_router,
        links_router,
        clicks_router,
        postbacks_router,
        sources_router,
        conversions_router,
        commissions_router,
        me_router,
    ],
    consumers=[PEOPLE_CONSUMER, PURCHASES_CONSUMER],
    workers=[APPROVAL_WORKER],
)


def create_app(runtime: ServiceRuntime | None = None) -> FastAPI:
    return create_service_app(DEFINITION, runtime)
