"""The infrastructure tables every service's database has: its outbox and its processed-event log."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import MetaData, Table

from shared.consumer import define_processed_events
from shared.outbox import Outbox, OutboxTables, define_outbox


@dataclass(frozen=True)
class ServiceTables:
    outbox_tables: OutboxTables
    processed_events: Table
    outbox: Outbox


def define_service_tables(metadata: MetaData, *, service: str) -> ServiceTables:
    outbox_tables = define_outbox(metadata)
    return ServiceTables(
        outbox_tables=outbox_tables,
        processed_events=define_processed_events(metadata),
        outbox=Outbox(outbox_tables, source=f"/crm/{service}"),
    )
