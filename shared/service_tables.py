"""The infrastructure tables every service's database has: its outbox, its consumers' positions and
processed-event ids, its copy of the API keys and its idempotency records."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import MetaData

from shared.auth.tables import AccessTables, define_access_tables
from shared.consumer import ConsumerTables, define_consumer_tables
from shared.outbox import Outbox, OutboxTables, define_outbox


@dataclass(frozen=True)
class ServiceTables:
    outbox_tables: OutboxTables
    consumer_tables: ConsumerTables
    outbox: Outbox
    access: AccessTables


def define_service_tables(metadata: MetaData, *, service: str) -> ServiceTables:
    outbox_tables = define_outbox(metadata)
    return ServiceTables(
        outbox_tables=outbox_tables,
        consumer_tables=define_consumer_tables(metadata),
        outbox=Outbox(outbox_tables, source=f"/crm/{service}"),
        access=define_access_tables(metadata),
    )
