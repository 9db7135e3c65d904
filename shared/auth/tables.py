"""The tables every service keeps for API access: its copy of the keys, and idempotency records."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import JSON, Column, Integer, LargeBinary, MetaData, String, Table

from shared.db import UTCDateTime


@dataclass(frozen=True)
class AccessTables:
    api_keys: Table
    idempotency: Table


def define_access_tables(metadata: MetaData) -> AccessTables:
    api_keys = Table(
        "api_key",
        metadata,
        Column("key_id", String(32), primary_key=True),
        # sha256 of the whole key; the key itself is shown once and stored nowhere.
        Column("secret_hash", String(64), nullable=False),
        Column("name", String(200)),
        Column("scopes", JSON, nullable=False),
        Column("affiliate_id", String(100)),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("expires_at", UTCDateTime()),
        Column("revoked_at", UTCDateTime()),
    )
    idempotency = Table(
        "idempotency_record",
        metadata,
        # Keys are per caller: the key id of the principal that sent the request.
        Column("principal", String(64), primary_key=True),
        Column("idempotency_key", String(255), primary_key=True),
        Column("fingerprint", String(64), nullable=False),
        Column("status", Integer),
        Column("headers", JSON),
        Column("body", LargeBinary),
        Column("started_at", UTCDateTime(), nullable=False),
        Column("completed_at", UTCDateTime()),
        Column("expires_at", UTCDateTime(), nullable=False, index=True),
    )
    return AccessTables(api_keys=api_keys, idempotency=idempotency)
