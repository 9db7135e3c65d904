"""Postbacks: JSON and GET, keys in a header or the URL, retries, later statuses, out of order, bad input."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from services.referrals.clicks.models import Click
from services.referrals.conversions import service
from services.referrals.conversions.schemas import PostbackIn
from shared.bus.base import EventBus, Record
from shared.bus.embedded import EmbeddedBus
from shared.db import session_scope, utc_now
from shared.errors import InvalidValue
from shared.events import topics
from shared.observability import RedactQuerySecrets
from shared.testing.bus import drain
from tests.services.referrals.postback_support import bearer, counts, field_of, post, postback_key
from tests.services.referrals.support import (
    make_affiliate,
    make_click,
    make_link,
    make_program,
    outbox_events,
    referrals_api,
    session_of,
)

HOUR_AGO = timedelta(hours=1)


async def test_a_postback_records_one_conversion_and_its_retries_are_duplicates(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program = await make_program(runtime)
        affiliate = await make_affiliate(runtime)
        link = await make_link(runtime, program, affiliate)
        click = await make_click(runtime, link, clicked_at=utc_now() - HOUR_AGO)
        key = await postback_key(client)
        body = {"click_id": click.id, "order_id": "o-1", "amount": 4999, "currency": "eur"}

        first = await post(client, key, body)
        assert first.status_code == 201, first.text
        taken = first.json()
        assert taken["outcome"] == "recorded"
        assert taken["duplicate"] is False
        conversion = taken["conversion"]
        assert conversion["affiliate_id"] == str(affiliate.id)
        assert conversion["click_id"] == click.id
        assert conversion["transaction_id"] == "o-1"
        assert (conversion["amount"], conversion["currency"], conversion["status"]) == (
            4999,
            "EUR",
            "pending",
        )
        assert conversion["goal"] == "sale"

        again = await post(client, key, body)
        assert again.status_code == 200
        assert again.json()["duplicate"] is True
        assert again.json()["outcome"] == "duplicate"
        assert again.json()["postback_id"] == taken["postback_id"]
        assert again.json()["conversion"]["id"] == conversion["id"]

        assert await counts(runtime) == (1, 2)
        events = await outbox_events(runtime, "crm.conversion.")
        assert [event["type"] for event in events] == ["crm.conversion.recorded", "crm.conversion.duplicate"]
        assert events[0]["key"] == conversion["id"]
        assert events[0]["affiliate_id"] == str(affiliate.id)
        assert events[0]["attributed"] is True

        detail = (await client.get(f"/v1/conversions/{conversion['id']}")).json()
        assert [postback["outcome"] for postback in detail["postbacks"]] == ["recorded", "duplicate"]
        assert detail["postbacks"][0]["authenticated_by"] == "key"


async def test_a_get_postback_takes_its_key_in_the_url_and_a_repeat_of_the_url_is_a_duplicate(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program = await make_program(runtime, key="shop")
        await make_program(runtime)  # two programs: an unknown click's must be named
        affiliate = await make_affiliate(runtime)
        link = await make_link(runtime, program, affiliate)
        click = await make_click(runtime, link, clicked_at=utc_now() - HOUR_AGO)
        key = await postback_key(client)
        url = f"/v1/postbacks?key={key}&clickid={click.id}&txid=t-9&amount=1250&status=approved&sub1=x"

        first = await client.get(url, headers={"Authorization": ""})
        assert first.status_code == 200, first.text
        assert first.json()["outcome"] == "recorded"
        assert first.json()["conversion"]["status"] == "approved"
        assert first.json()["conversion"]["currency"] == "EUR"  # the program's
        repeat = await client.get(url, headers={"Authorization": ""})
        assert repeat.json()["duplicate"] is True
        assert await counts(runtime) == (1, 2)

        # An unknown click is no error: kept, unattributed, with the reason.
        unknown = await client.get(
            f"/v1/postbacks?key={key}&click_id=nope&txid=t-10&program=shop", headers={"Authorization": ""}
        )
        assert unknown.status_code == 200
        assert unknown.json()["conversion"]["attributed"] is False
        assert unknown.json()["conversion"]["unattributed_reason"] == "unknown_click"
        # Its refund need not name the program again.
        refund = await client.get(
            f"/v1/postbacks?key={key}&click_id=nope&txid=t-10&status=refunded", headers={"Authorization": ""}
        )
        assert refund.json()["outcome"] == "status_changed"
        # Without a program to find, the postback cannot be kept: 422 naming `program`.
        lost = await client.get(
            f"/v1/postbacks?key={key}&click_id=nope&txid=t-11", headers={"Authorization": ""}
        )
        assert lost.status_code == 422
        assert field_of(lost) == ["program"]

        # The JSON postback takes it too; a header wins over it.
        posted = await client.post(
            f"/v1/postbacks?key={key}",
            json={"code": link.code, "txid": "t-12"},
            headers={"Authorization": ""},
        )
        assert posted.status_code == 201
        reader = (await client.post("/v1/keys", json={"scopes": ["referrals:read"]})).json()["key"]
        both = await client.get(f"/v1/postbacks?key={key}&code={link.code}&txid=t-13", headers=bearer(reader))
        assert both.status_code == 403
        # The key in the URL is for the postback routes only, and documented there.
        elsewhere = await client.get(f"/v1/conversions?key={key}", headers={"Authorization": ""})
        assert elsewhere.status_code == 401
        paths = (await client.get("/openapi.json")).json()["paths"]
        for method in ("get", "post"):
            assert "key" in [parameter["name"] for parameter in paths["/v1/postbacks"][method]["parameters"]]
        assert "key" not in [parameter["name"] for parameter in paths["/v1/conversions"]["get"]["parameters"]]


async def test_later_statuses_change_the_conversion_and_older_ones_are_stale(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program = await make_program(runtime)
        link = await make_link(runtime, program, await make_affiliate(runtime))
        click = await make_click(runtime, link, clicked_at=utc_now() - HOUR_AGO)
        key = await postback_key(client)
        sale = {"click_id": click.id, "transaction_id": "o-2", "amount": 1000}

        await post(client, key, sale)
        approved = await post(client, key, {**sale, "status": "approved"})
        assert approved.json()["outcome"] == "status_changed"
        # The first sale again (a tracker's retry after the approval): a duplicate, whatever it says.
        retry = await post(client, key, {**sale, "status": "pending", "amount": 5})
        assert retry.json()["outcome"] == "duplicate"
        assert retry.json()["conversion"]["status"] == "approved"
        assert retry.json()["conversion"]["amount"] == 1000
        refunded = await post(client, key, {**sale, "status": "refunded", "reason": "returned"})
        assert refunded.json()["outcome"] == "status_changed"
        assert refunded.json()["conversion"]["status"] == "refunded"
        chargeback = await post(client, key, {**sale, "status": "chargeback"})
        assert chargeback.json()["outcome"] == "stale"  # refunded is final

        # An approval first, its sale after: the sale is stale, and known details are never overwritten.
        approval = {**sale, "transaction_id": "o-2b", "status": "approved"}
        assert (await post(client, key, approval)).json()["outcome"] == "recorded"
        stale = await post(client, key, {**approval, "status": "pending", "amount": 5})
        assert stale.json()["outcome"] == "stale"
        assert (stale.json()["conversion"]["status"], stale.json()["conversion"]["amount"]) == (
            "approved",
            1000,
        )

        changes = await outbox_events(runtime, "crm.conversion.status_changed")
        assert [(e["old_status"], e["new_status"], e["reason"]) for e in changes] == [
            ("pending", "approved", None),
            ("approved", "refunded", "returned"),
        ]
        assert await counts(runtime) == (2, 7)


async def test_a_refund_before_its_sale_makes_the_conversion_refunded_and_the_sale_completes_it(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program = await make_program(runtime)
        link = await make_link(runtime, program, await make_affiliate(runtime))
        click = await make_click(runtime, link, clicked_at=utc_now() - timedelta(days=2))
        key = await postback_key(client)
        sold_at = utc_now() - timedelta(days=1)

        refund = await post(
            client, key, {"click_id": click.id, "transaction_id": "o-3", "status": "refunded"}
        )
        assert refund.status_code == 201
        assert refund.json()["conversion"]["status"] == "refunded"
        assert refund.json()["conversion"]["amount"] is None
        sale = {
            "click_id": click.id,
            "transaction_id": "o-3",
            "amount": 7000,
            "customer_id": "c-1",
            "occurred_at": sold_at.isoformat(),
        }
        late = await post(client, key, sale)
        assert late.json()["outcome"] == "stale"
        conversion = late.json()["conversion"]
        assert conversion["currency"] == "EUR"  # the program's, as on a first postback
        assert (conversion["status"], conversion["amount"], conversion["customer_id"]) == (
            "refunded",
            7000,
            "c-1",
        )
        assert conversion["occurred_at"].startswith(sold_at.isoformat()[:19])
        assert (await post(client, key, sale)).json()["duplicate"] is True
        assert await counts(runtime) == (1, 3)


async def test_concurrent_copies_of_a_postback_make_one_conversion(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program = await make_program(runtime)
        link = await make_link(runtime, program, await make_affiliate(runtime))
        click = await make_click(runtime, link, clicked_at=utc_now() - HOUR_AGO)
        key = await postback_key(client)
        body = {"click_id": click.id, "transaction_id": "o-4", "amount": 100}

        answers = await asyncio.gather(*(post(client, key, body) for _ in range(6)))
        assert sorted(answer.status_code for answer in answers) == [200] * 5 + [201]
        assert len({answer.json()["conversion"]["id"] for answer in answers}) == 1

        # And past the group commit: each in a transaction of its own, at once.
        item = service.NewPostback(
            data=PostbackIn.model_validate({**body, "transaction_id": "o-5"}),
            source="direct",
            method="POST",
            authenticated_by="key",
        )

        async def alone() -> service.Taken:
            async with session_scope(runtime.database) as session:
                return await service.take_postback(session, item)

        taken = await asyncio.gather(*(alone() for _ in range(6)))
        assert sorted(result.outcome.value for result in taken) == ["duplicate"] * 5 + ["recorded"]
        assert len({result.conversion.id for result in taken}) == 1
        # A later status, posted six times at once, changes the conversion once.
        approval = service.NewPostback(
            data=PostbackIn.model_validate({**body, "transaction_id": "o-5", "status": "approved"}),
            source="direct",
            method="POST",
            authenticated_by="key",
        )

        async def approve() -> service.Taken:
            async with session_scope(runtime.database) as session:
                return await service.take_postback(session, approval)

        approved = await asyncio.gather(*(approve() for _ in range(6)))
        assert sorted(result.outcome.value for result in approved) == ["duplicate"] * 5 + ["status_changed"]
        assert await counts(runtime) == (2, 18)
        assert len(await outbox_events(runtime, "crm.conversion.recorded")) == 2
        assert len(await outbox_events(runtime, "crm.conversion.status_changed")) == 1


async def test_an_idempotency_key_answers_a_repeat_as_a_duplicate(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program = await make_program(runtime)
        link = await make_link(runtime, program, await make_affiliate(runtime))
        key = await postback_key(client)
        body = {"code": link.code, "transaction_id": "o-6", "amount": 100}

        first = await post(client, key, body, **{"Idempotency-Key": "k-1"})
        # The same key, even with another status: the first postback's answer, a duplicate.
        repeat = await post(client, key, {**body, "status": "approved"}, **{"Idempotency-Key": "k-1"})
        assert repeat.status_code == 200
        assert repeat.json()["duplicate"] is True
        assert repeat.json()["postback_id"] == first.json()["postback_id"]
        assert repeat.json()["conversion"]["status"] == "pending"
        reused = await post(client, key, {**body, "transaction_id": "o-7"}, **{"Idempotency-Key": "k-1"})
        assert reused.status_code == 422
        assert field_of(reused) == ["Idempotency-Key"]
        assert await counts(runtime) == (1, 2)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"click_id": "c", "transaction_id": "t", "amount": "49.99"}, "amount"),
        ({"click_id": "c", "transaction_id": "t", "amount": 49.99}, "amount"),
        ({"click_id": "c", "transaction_id": "t", "amount": -1}, "amount"),
        ({"click_id": "c", "transaction_id": "t", "currency": "EURO"}, "currency"),
        ({"click_id": "c", "transaction_id": "t", "status": "paid"}, "status"),
        ({"click_id": "c", "transaction_id": "t", "contact_id": "x"}, "contact_id"),
        ({"click_id": "c", "transaction_id": "t", "occurred_at": "2026-01-01T00:00:00"}, "occurred_at"),
        ({"click_id": "c", "transaction_id": "t", "customer_email": "not an email"}, "customer_email"),
        ({"click_id": "c"}, "transaction_id"),
        ({"transaction_id": "t"}, "click_id"),
        ({"click_id": "c", "transaction_id": "t", "event": "signup"}, "event"),
        ({"click_id": "c", "transaction_id": "t", "program": "nope"}, "program"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(
    local_bus: EmbeddedBus, tmp_path: Path, body: dict[str, Any], field: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'referrals.sqlite'}"
    async with referrals_api(url, local_bus, tmp_path) as (client, runtime):
        await make_program(runtime)
        key = await postback_key(client)
        answer = await post(client, key, body)
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert field_of(answer) == [field]
        as_get = await client.get("/v1/postbacks", params={**body, "key": key}, headers={"Authorization": ""})
        assert as_get.status_code == 422
        assert field_of(as_get) == [field]
        assert await counts(runtime) == (0, 0)
        assert await outbox_events(runtime, "crm.conversion.") == []


async def test_postbacks_need_the_postback_scope(local_bus: EmbeddedBus, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'referrals.sqlite'}"
    async with referrals_api(url, local_bus, tmp_path) as (client, _runtime):
        body = {"click_id": "c", "transaction_id": "t"}
        assert (
            await client.post("/v1/postbacks", json=body, headers={"Authorization": ""})
        ).status_code == 401
        assert (
            await client.get("/v1/postbacks?key=crm_nope_x", headers={"Authorization": ""})
        ).status_code == 401
        reader = (await client.post("/v1/keys", json={"scopes": ["referrals:read"]})).json()["key"]
        assert (await client.post("/v1/postbacks", json=body, headers=bearer(reader))).status_code == 403


async def test_a_key_bound_to_an_affiliate_posts_and_credits_only_itself(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program = await make_program(runtime)
        own, other = await make_affiliate(runtime, name="own"), await make_affiliate(runtime, name="other")
        own_click = await make_click(
            runtime, await make_link(runtime, program, own), clicked_at=utc_now() - HOUR_AGO
        )
        other_click = await make_click(
            runtime, await make_link(runtime, program, other), clicked_at=utc_now() - HOUR_AGO
        )
        key = await postback_key(client, affiliate_id=own.id)

        mine = await post(client, key, {"click_id": own_click.id, "transaction_id": "a-1"})
        assert mine.status_code == 201
        assert mine.json()["conversion"]["affiliate_id"] == str(own.id)
        theirs = await post(client, key, {"click_id": other_click.id, "transaction_id": "a-2"})
        assert theirs.json()["conversion"]["affiliate_id"] is None
        assert theirs.json()["conversion"]["unattributed_reason"] == "not_own_click"
        # The staff API stays closed to it.
        assert (await client.get("/v1/conversions", headers=bearer(key))).status_code == 403


async def test_the_contact_named_by_a_conversion_is_set_on_its_crediting_click(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program = await make_program(runtime)
        link = await make_link(runtime, program, await make_affiliate(runtime))
        click = await make_click(runtime, link, clicked_at=utc_now() - HOUR_AGO)
        contact_id = uuid.uuid4()
        key = await postback_key(client)
        await post(
            client, key, {"click_id": click.id, "transaction_id": "o-8", "contact_id": str(contact_id)}
        )
        async with session_of(runtime) as session:
            assert await session.scalar(select(Click.contact_id).where(Click.id == click.id)) == contact_id


def test_access_logs_never_show_a_key_in_the_url() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        (
            "127.0.0.1:5000",
            "GET",
            "/referrals/v1/postbacks?click_id=a&key=crm_0123_secret&txid=1",
            "1.1",
            200,
        ),
        None,
    )
    assert RedactQuerySecrets().filter(record)
    line = record.getMessage()
    assert "crm_0123_secret" not in line
    assert "?click_id=a&key=REDACTED&txid=1" in line


async def test_conversions_are_listed_newest_first_a_page_at_a_time_and_filtered(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        shop, other = await make_program(runtime, key="shop"), await make_program(runtime, key="other")
        ada, bob = await make_affiliate(runtime, name="ada"), await make_affiliate(runtime, name="bob")
        ada_link, bob_link = await make_link(runtime, shop, ada), await make_link(runtime, other, bob)
        key = await postback_key(client)
        for index in range(5):
            await post(client, key, {"code": ada_link.code, "transaction_id": f"a-{index}"})
        await post(client, key, {"code": bob_link.code, "transaction_id": "b-0", "status": "approved"})
        await post(client, key, {"code": "nobody", "program": "other", "transaction_id": "u-0"})

        seen: list[str] = []
        url: str | None = "/v1/conversions?limit=3"
        while url is not None:
            page = await client.get(url)
            assert page.status_code == 200
            seen += [conversion["transaction_id"] for conversion in page.json()["items"]]
            cursor = page.json()["next_cursor"]
            url = f"/v1/conversions?limit=3&cursor={cursor}" if cursor else None
        assert seen == ["u-0", "b-0", "a-4", "a-3", "a-2", "a-1", "a-0"]

        async def ids(**filters: str) -> list[str]:
            answer = await client.get("/v1/conversions", params=filters)
            assert answer.status_code == 200, answer.text
            return [conversion["transaction_id"] for conversion in answer.json()["items"]]

        assert await ids(program_id=str(other.id)) == ["u-0", "b-0"]
        assert await ids(affiliate_id=str(ada.id), limit="2") == ["a-4", "a-3"]
        assert await ids(status="approved") == ["b-0"]
        assert await ids(attributed="false") == ["u-0"]
        assert await ids(review="held") == []
        bad = await client.get("/v1/conversions", params={"cursor": "nonsense"})
        assert bad.status_code == 422
        assert field_of(bad) == ["cursor"]
        assert field_of(await client.get("/v1/conversions", params={"status": "paid"})) == ["status"]


async def test_a_conversions_events_reach_the_bus_in_order_keyed_by_the_conversion(
    database_url: str, bus: EventBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, bus, tmp_path, relay=True) as (client, runtime):
        program = await make_program(runtime)
        link = await make_link(runtime, program, await make_affiliate(runtime))
        key = await postback_key(client)
        sale = {"code": link.code, "transaction_id": f"bus-{uuid.uuid4()}", "amount": 100}
        conversion_id = (await post(client, key, sale)).json()["conversion"]["id"]
        await post(client, key, sale)
        await post(client, key, {**sale, "status": "approved"})

        async with bus.consumer(f"reader-{uuid.uuid4()}", [topics.REFERRALS.name]) as consumer:
            mine: list[Record] = []
            deadline = asyncio.get_running_loop().time() + 30
            while len(mine) < 3 and asyncio.get_running_loop().time() < deadline:
                mine += [
                    record
                    for record in await drain(consumer, count=1, timeout_s=1)
                    # The commission the sale earned travels under the same key, between them.
                    if record.key == conversion_id
                    and record.headers["ce_type"].decode().startswith("crm.conversion.")
                ]
        assert [record.headers["ce_type"].decode() for record in mine] == [
            "crm.conversion.recorded",
            "crm.conversion.duplicate",
            "crm.conversion.status_changed",
        ]
        assert len({record.partition for record in mine}) == 1


async def test_a_batch_takes_its_postbacks_as_if_one_by_one(
    database_url: str, local_bus: EmbeddedBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (_client, runtime):
        program = await make_program(runtime)
        link = await make_link(runtime, program, await make_affiliate(runtime))

        def item(transaction: str, **fields: Any) -> service.NewPostback:
            data = PostbackIn.model_validate({"code": link.code, "transaction_id": transaction, **fields})
            return service.NewPostback(data=data, source="batch", method="POST", authenticated_by="key")

        async with session_scope(runtime.database) as session:
            await service.take_postback(session, item("known"))
        batch = [
            item("renewal", code=None, customer_id="c-1", program=program.key),  # by the next one's customer
            item("known", status="approved"),  # its transaction has a conversion: a later status
            item("a"),
            item("a", status="refunded"),  # after the first of its transaction, in the same batch
            item("bad", event="signup"),
            item("b", amount=5, customer_id="c-1"),
            item("a"),  # a retry of the batch's first `a`
        ]
        async with session_scope(runtime.database) as session:
            results = await service.take_postbacks(session, batch)
        renewal, *results = results
        assert not isinstance(renewal, Exception)
        assert (renewal.outcome.value, renewal.conversion.affiliate_id) == ("recorded", link.affiliate_id)
        outcomes = [result if isinstance(result, Exception) else result.outcome.value for result in results]
        assert outcomes[:3] == ["status_changed", "recorded", "status_changed"]
        assert isinstance(outcomes[3], InvalidValue)
        assert outcomes[4:] == ["recorded", "duplicate"]
        assert await counts(runtime) == (4, 7)
        events = [(event["type"], event["key"]) for event in await outbox_events(runtime, "crm.conversion.")]
        a_id = str(results[1].conversion.id)  # type: ignore[union-attr]
        assert [kind for kind, key in events if key == a_id] == [
            "crm.conversion.recorded",
            "crm.conversion.status_changed",
            "crm.conversion.duplicate",
        ]
