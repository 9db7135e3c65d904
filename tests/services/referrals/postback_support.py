"""Helpers for the postback, attribution and fraud tests: keys, postbacks, and what they left behind."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import func, select

from services.referrals.conversions.models import Conversion, Postback
from shared.identity import IdentityHasher, identity_key
from shared.runtime import ServiceRuntime


async def postback_key(client: httpx.AsyncClient, *, affiliate_id: uuid.UUID | None = None) -> str:
    """A new API key holding `referrals:postback` (bound to an affiliate when given)."""
    body: dict[str, Any] = {"scopes": ["referrals:postback"], "name": "tracker"}
    if affiliate_id is not None:
        body["affiliate_id"] = str(affiliate_id)
    created = await client.post("/v1/keys", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def post(client: httpx.AsyncClient, key: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return await client.post("/v1/postbacks", json=body, headers={**bearer(key), **headers})


async def counts(runtime: ServiceRuntime) -> tuple[int, int]:
    """How many conversions and postbacks are stored."""
    async with runtime.database.sessionmaker() as session:
        conversions = await session.scalar(select(func.count()).select_from(Conversion))
        postbacks = await session.scalar(select(func.count()).select_from(Postback))
    return int(conversions or 0), int(postbacks or 0)


def hasher(runtime: ServiceRuntime) -> IdentityHasher:
    """The deployment's email hasher."""
    return IdentityHasher(identity_key(runtime.platform))


def field_of(problem: httpx.Response) -> list[str]:
    return [error["field"] for error in problem.json().get("errors", [])]
