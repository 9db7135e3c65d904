"""Referrals follows the people contacts speaks of: email hashes, merges, and erasures that strip the
person and keep the accounts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select, text

from services.referrals.affiliates.models import Affiliate
from services.referrals.app import DEFINITION
from services.referrals.clicks.models import Click
from services.referrals.commissions.models import Commission
from services.referrals.conversions.models import Conversion
from services.referrals.people.models import ContactEmail
from shared.bus.embedded import EmbeddedBus
from shared.events import topics
from shared.events.base import Event
from shared.events.catalog import ContactCreated, ContactErased, ContactMerged, ContactUpdated
from shared.events.envelope import to_message
from shared.identity import IdentityHasher, identity_key
from shared.runtime import ServiceRuntime
from shared.testing.consumers import wait_until_caught_up
from tests.services.referrals.postback_support import post, postback_key
from tests.services.referrals.support import (
    make_affiliate,
    make_click,
    make_link,
    make_program,
    outbox_events,
    referrals_api,
    session_of,
)

AT = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


async def _contacts_say(runtime: ServiceRuntime, bus: EmbeddedBus, *events: Event) -> None:
    await bus.publish([to_message(event, source="/crm/contacts") for event in events])
    await wait_until_caught_up(
        runtime.database, DEFINITION.consumer_tables, "referrals.people", bus, [topics.CONTACTS.name]
    )


async def _emails(runtime: ServiceRuntime) -> dict[str, uuid.UUID]:
    async with runtime.database.sessionmaker() as session:
        return {row.email_hash: row.contact_id for row in await session.scalars(select(ContactEmail))}


async def test_the_email_hashes_follow_the_contacts_events(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    ada, grace = uuid.uuid4(), uuid.uuid4()
    async with referrals_api(database_url, local_bus, tmp_path) as (_, runtime):
        await _contacts_say(
            runtime,
            local_bus,
            ContactCreated(contact_id=ada, lifecycle_stage="lead", email_hashes=["a1", "a2"], created_at=AT),
            ContactCreated(contact_id=grace, lifecycle_stage="lead", email_hashes=["g1"], created_at=AT),
        )
        created = await _emails(runtime)
        # Ada drops a2 and takes g1 over (Grace gave the address up, and it moved with her consent).
        await _contacts_say(
            runtime,
            local_bus,
            ContactUpdated(
                contact_id=ada,
                changed_fields=["email"],
                changes={},
                email_hashes=["a1", "g1"],
                updated_at=AT,
            ),
        )
        updated = await _emails(runtime)
    assert created == {"a1": ada, "a2": ada, "g1": grace}
    assert updated == {"a1": ada, "g1": ada}


async def test_a_merge_moves_and_an_erasure_strips_the_person_but_keeps_the_accounts(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    ada, old, bob = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with referrals_api(database_url, local_bus, tmp_path) as (_, runtime):
        hasher = IdentityHasher(identity_key(runtime.platform))
        ada_email = hasher.email("ada@example.com")
        program = await make_program(runtime)
        partner = await make_affiliate(runtime)
        # Ada referred others as a customer, under her old contact (merged into `ada` later).
        ada_as_affiliate = await make_affiliate(
            runtime, kind="customer", name="Ada Lovelace", email="ada@example.com", contact_id=old
        )
        link = await make_link(runtime, program, partner)
        laptop = await make_click(runtime, link, visitor_id="ada-laptop", ip_hash="ip-of-ada")
        earlier_on_laptop = await make_click(runtime, link, visitor_id="ada-laptop", ip_hash="ip-of-ada")
        bobs = await make_click(runtime, link, visitor_id="bob-phone", ip_hash="ip-of-bob")
        async with session_of(runtime) as session:
            by_contact = _conversion(program.id, partner.id, "t-1", click_id=laptop.id, contact_id=old)
            by_email_only = _conversion(program.id, partner.id, "t-2", email_hash=ada_email)
            bobs_conversion = _conversion(program.id, partner.id, "t-3", click_id=bobs.id, contact_id=bob)
            session.add_all([by_contact, by_email_only, bobs_conversion])
            await session.flush()
            reward = Commission(
                conversion_id=by_contact.id,
                program_id=program.id,
                kind="referee_reward",
                contact_id=old,
                rule="sale:fixed",
                amount=500,
                currency="EUR",
                status="pending",
            )
            session.add(reward)

        await _contacts_say(
            runtime,
            local_bus,
            ContactCreated(
                contact_id=ada, lifecycle_stage="customer", email_hashes=[ada_email], created_at=AT
            ),
            ContactMerged(
                contact_id=ada, merged_contact_id=old, merge_id=uuid.uuid4(), actor="k", merged_at=AT
            ),
        )
        async with runtime.database.sessionmaker() as session:
            merged = {
                "conversion": await session.scalar(
                    select(Conversion.contact_id).where(Conversion.id == by_contact.id)
                ),
                "affiliate": await session.scalar(
                    select(Affiliate.contact_id).where(Affiliate.id == ada_as_affiliate.id)
                ),
                "reward": await session.scalar(
                    select(Commission.contact_id).where(Commission.id == reward.id)
                ),
            }

        receipt = uuid.uuid4()
        await _contacts_say(
            runtime,
            local_bus,
            ContactErased(contact_id=ada, merged_contact_ids=[old], receipt_id=receipt, erased_at=AT),
        )
        async with runtime.database.sessionmaker() as session:
            clicks = {click.id: click for click in await session.scalars(select(Click))}
            conversions = {c.transaction_id: c for c in await session.scalars(select(Conversion))}
            affiliate = await session.get(Affiliate, ada_as_affiliate.id)
            reward_after = await session.get(Commission, reward.id)
            email_rows = await session.scalar(text("SELECT count(*) FROM contact_email"))
        confirmations = await outbox_events(runtime, "crm.erasure.confirmed")

    assert merged == {"conversion": ada, "affiliate": ada, "reward": ada}
    # Ada's browser, the click she converted on and the one before it, is stripped; Bob's is not.
    for click_id in (laptop.id, earlier_on_laptop.id):
        click = clicks[click_id]
        assert (click.ip_hash, click.user_agent, click.contact_id) == (None, None, None)
    assert (clicks[bobs.id].ip_hash, clicks[bobs.id].user_agent) == ("ip-of-bob", "Mozilla/5.0")
    # The accounts stay: both of Ada's conversions, with their money, without what tied them to her.
    for transaction_id in ("t-1", "t-2"):
        conversion = conversions[transaction_id]
        assert (conversion.contact_id, conversion.customer_id, conversion.customer_email_hash) == (
            None,
            None,
            None,
        )
        assert (conversion.amount, conversion.affiliate_id) == (10_000, partner.id)
    assert conversions["t-3"].contact_id == bob
    assert affiliate is not None
    assert (affiliate.name, affiliate.email, affiliate.email_hash, affiliate.contact_id) == (
        "(erased)",
        None,
        None,
        None,
    )
    assert reward_after is not None
    assert (reward_after.contact_id, reward_after.amount) == (None, 500)
    assert email_rows == 0
    assert [(event["receipt_id"], event["service"]) for event in confirmations] == [
        (str(receipt), "referrals")
    ]


def _conversion(
    program_id: uuid.UUID,
    affiliate_id: uuid.UUID,
    transaction_id: str,
    *,
    click_id: str | None = None,
    contact_id: uuid.UUID | None = None,
    email_hash: str | None = None,
) -> Conversion:
    return Conversion(
        program_id=program_id,
        source="tracker",
        transaction_id=transaction_id,
        goal="sale",
        amount=10_000,
        currency="EUR",
        status="approved",
        affiliate_id=affiliate_id,
        click_id=click_id,
        attributed=True,
        attribution={},
        customer_id=f"cus-{transaction_id}" if contact_id or email_hash else None,
        contact_id=contact_id,
        customer_email_hash=email_hash,
        occurred_at=AT,
    )


async def test_a_buyer_named_by_email_is_the_contact_with_that_address(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    ada = uuid.uuid4()
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        hasher = IdentityHasher(identity_key(runtime.platform))
        await _contacts_say(
            runtime,
            local_bus,
            ContactCreated(
                contact_id=ada,
                lifecycle_stage="lead",
                email_hashes=[hasher.email("ada@example.com")],
                created_at=AT,
            ),
        )
        program = await make_program(runtime)
        link = await make_link(runtime, program, await make_affiliate(runtime))
        key = await postback_key(client)
        answer = await post(
            client, key, {"code": link.code, "transaction_id": "o-1", "customer_email": "Ada@Example.com"}
        )
        async with runtime.database.sessionmaker() as session:
            stored = await session.scalar(
                select(Conversion.contact_id).where(Conversion.transaction_id == "o-1")
            )

    assert answer.status_code == 201, answer.text
    assert stored == ada
