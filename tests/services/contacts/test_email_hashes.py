"""Events name a person's emails only as keyed hashes: the same key gives the same hash in every service,
another key another hash, and the address itself is on no topic."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
from pydantic import SecretStr

from services.contacts.app import DEFINITION
from shared.bus.embedded import EmbeddedBus
from shared.identity import KEY_FILE, IdentityHasher
from shared.testing.apps import service_client
from tests.services.contacts.sales_support import outbox_events


def _hmac(key: bytes, address: str) -> str:
    return hmac.new(key, address.encode(), hashlib.sha256).hexdigest()


async def test_created_and_updated_events_carry_keyed_hashes_of_the_emails_and_never_the_addresses(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with service_client(
        DEFINITION, database_url=database_url, bus=local_bus, data_dir=tmp_path, relay=False
    ) as (client, runtime):
        created = await client.post(
            "/v1/contacts", json={"email": "Ada@Example.com", "emails": ["countess@example.org"]}
        )
        assert created.status_code == 201, created.text
        url = f"/v1/contacts/{created.json()['id']}"
        await client.patch(url, json={"first_name": "Ada"})
        await client.patch(url, json={"emails": ["lovelace@example.net"]})

        # No key configured: one was made in the data folder, and it is what the hashes use.
        key = (tmp_path / KEY_FILE).read_text().strip().encode()
        [event] = await outbox_events(runtime, "crm.contact.created")
        assert event["email_hashes"] == [_hmac(key, "ada@example.com"), _hmac(key, "countess@example.org")]
        names, emails = await outbox_events(runtime, "crm.contact.updated")
        assert names["email_hashes"] is None, "the emails did not change"
        assert emails["email_hashes"] == [_hmac(key, "ada@example.com"), _hmac(key, "lovelace@example.net")]
        for record in (event, names, emails):
            assert b"example" not in record["raw"]


async def test_a_configured_key_is_the_one_every_service_hashes_with(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    key = "a-deployment-wide-secret-of-32-bytes"
    async with service_client(
        DEFINITION,
        database_url=database_url,
        bus=local_bus,
        data_dir=tmp_path,
        relay=False,
        identity_hash_key=SecretStr(key),
    ) as (client, runtime):
        assert (await client.post("/v1/contacts", json={"email": "grace@example.com"})).status_code == 201
        [event] = await outbox_events(runtime, "crm.contact.created")
    assert event["email_hashes"] == [_hmac(key.encode(), "grace@example.com")]
    assert event["email_hashes"] == [IdentityHasher(key.encode()).email(" Grace@Example.com ")]
    assert event["email_hashes"] != [IdentityHasher(b"another key, 16+ bytes").email("grace@example.com")]
    assert not (tmp_path / KEY_FILE).exists(), "a configured key needs no file"


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        IdentityHasher(b"short")
