"""The referrals service's tables: its declarative base, outbox and processed-event log."""

from sqlalchemy.orm import DeclarativeBase

from shared.db import new_metadata
from shared.service_tables import define_service_tables


class Base(DeclarativeBase):
    metadata = new_metadata()


tables = define_service_tables(Base.metadata, service="referrals")
outbox = tables.outbox
