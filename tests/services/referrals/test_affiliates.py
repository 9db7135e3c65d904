"""`/v1/affiliates`: partners and referring customers, the email's keyed hash, and affiliate-bound keys."""

from __future__ import annotations

import uuid
from pathlib import Path

from services.referrals.affiliates.models import Affiliate
from shared.bus.base import EventBus
from shared.identity import IdentityHasher, identity_key
from tests.services.contacts.sales_support import error_fields, problem
from tests.services.referrals.support import make_affiliate, outbox_events, referrals_api, session_of


async def test_an_affiliate_keeps_its_email_with_the_keyed_hash(
    database_url: str, local_bus: EventBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        contact_id = uuid.uuid4()
        created = await client.post(
            "/v1/affiliates",
            json={
                "kind": "customer",
                "name": "Grace",
                "email": " Grace@Example.com ",
                "contact_id": str(contact_id),
            },
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert (body["kind"], body["status"], body["contact_id"]) == ("customer", "active", str(contact_id))
        assert "email_hash" not in body
        hasher = IdentityHasher(identity_key(runtime.platform))
        async with session_of(runtime) as session:
            stored = await session.get(Affiliate, uuid.UUID(body["id"]))
            assert stored is not None
            assert stored.email_hash == hasher.email("grace@example.com")
        patched = await client.patch(
            created.headers["location"],
            json={"email": "g@example.org", "status": "suspended"},
            headers={"If-Match": '"1"'},
        )
        assert patched.json()["status"] == "suspended"
        async with session_of(runtime) as session:
            stored = await session.get(Affiliate, uuid.UUID(body["id"]))
            assert stored is not None
            assert stored.email_hash == hasher.email("g@example.org")
        cleared = await client.patch(created.headers["location"], json={"email": None})
        assert cleared.json()["email"] is None
        async with session_of(runtime) as session:
            stored = await session.get(Affiliate, uuid.UUID(body["id"]))
            assert stored is not None
            assert stored.email_hash is None
        assert [item["id"] for item in (await client.get("/v1/affiliates")).json()["items"]] == [body["id"]]


async def test_bad_affiliates_are_422_naming_the_field(
    database_url: str, local_bus: EventBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        assert error_fields(await client.post("/v1/affiliates", json={"name": "A", "kind": "vendor"})) == [
            "kind"
        ]
        assert error_fields(await client.post("/v1/affiliates", json={"name": "A", "email": "nope"})) == [
            "email"
        ]
        assert error_fields(await client.post("/v1/affiliates", json={"name": ""})) == ["name"]
        affiliate = await make_affiliate(runtime)
        answer = await client.patch(f"/v1/affiliates/{affiliate.id}", json={"status": None})
        assert error_fields(answer) == ["status"]
        problem(await client.get(f"/v1/affiliates/{uuid.uuid4()}"), 404)


async def test_a_key_bound_to_the_affiliate_is_made_shown_once_and_announced(
    database_url: str, local_bus: EventBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        affiliate = await make_affiliate(runtime)
        made = await client.post(f"/v1/affiliates/{affiliate.id}/keys", json={"name": "Ada's tracker"})
        assert made.status_code == 201, made.text
        key = made.json()
        assert key["affiliate_id"] == str(affiliate.id)
        assert key["key"].startswith("crm_")
        assert key["scopes"] == ["referrals:postback", "referrals:read"]
        [event] = await outbox_events(runtime, "crm.api_key.created")
        assert event["key_id"] == key["key_id"]
        assert event["affiliate_id"] == str(affiliate.id)
        assert key["key"] not in str(event)
        # The key is the affiliate's: the staff API refuses it.
        bound = {"Authorization": f"Bearer {key['key']}"}
        problem(await client.get("/v1/links", headers=bound), 403)
        problem(await client.get(f"/v1/affiliates/{affiliate.id}", headers=bound), 403)
        listed = (await client.get(f"/v1/keys/{key['key_id']}")).json()
        assert "key" not in listed

        only_postback = await client.post(
            f"/v1/affiliates/{affiliate.id}/keys", json={"scopes": ["referrals:postback"]}
        )
        assert only_postback.json()["scopes"] == ["referrals:postback"]
        beyond = await client.post(
            f"/v1/affiliates/{affiliate.id}/keys", json={"scopes": ["referrals:write"]}
        )
        assert error_fields(beyond) == ["scopes"]
        problem(await client.post(f"/v1/affiliates/{uuid.uuid4()}/keys", json={}), 404)
        assert len(await outbox_events(runtime, "crm.api_key.created")) == 2
