"""`/v1/links`: codes given or made, unique, destinations checked, filters, patches the redirect follows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from services.referrals.affiliates.models import Affiliate
from services.referrals.links.models import Link
from services.referrals.programs.models import Program
from shared.bus.base import EventBus
from tests.services.contacts.sales_support import error_fields, problem
from tests.services.referrals.support import make_affiliate, make_program, referrals_api, session_of


def _body(program: Program, affiliate: Affiliate, **fields: Any) -> dict[str, Any]:
    return {
        "program_id": str(program.id),
        "affiliate_id": str(affiliate.id),
        "destination_url": "https://shop.example.com/pricing",
        **fields,
    }


async def _create(
    client: httpx.AsyncClient, program: Program, affiliate: Affiliate, **fields: Any
) -> httpx.Response:
    return await client.post("/v1/links", json=_body(program, affiliate, **fields))


async def test_a_link_with_a_given_code_and_one_with_a_made_code(
    database_url: str, local_bus: EventBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program, affiliate = await make_program(runtime), await make_affiliate(runtime)
        given = await _create(
            client, program, affiliate, code="ada-spring", utm_source="ada", utm_medium="blog"
        )
        assert given.status_code == 201, given.text
        assert given.json()["code"] == "ada-spring"
        assert given.json()["tracking_url"] == "http://testserver/r/ada-spring"
        assert (given.json()["utm_source"], given.json()["utm_campaign"]) == ("ada", None)
        made = (await _create(client, program, affiliate)).json()
        assert len(made["code"]) == 8
        assert (await client.get(f"/r/{made['code']}")).status_code == 302
        read = await client.get(given.headers["location"])
        assert read.json() == given.json()
        assert read.headers["etag"] == '"1"'


async def test_a_taken_code_is_409_with_the_existing_id(
    database_url: str, local_bus: EventBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program, affiliate = await make_program(runtime), await make_affiliate(runtime)
        first = (await _create(client, program, affiliate, code="spring")).json()
        assert (
            problem(await _create(client, program, affiliate, code="spring"), 409)["existing_id"]
            == first["id"]
        )


async def test_bad_links_are_422_naming_the_field_and_write_nothing(
    database_url: str, local_bus: EventBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program, affiliate = await make_program(runtime), await make_affiliate(runtime)
        for code in ("ab", "a" * 65, "has space", "dots.not", "slash/no", "café"):
            assert error_fields(await _create(client, program, affiliate, code=code)) == ["code"], code
        for destination in (
            "ftp://shop.example.com/",
            "/relative",
            "shop.example.com",
            "https://",
            "javascript:x",
        ):
            answer = await _create(client, program, affiliate, destination_url=destination)
            assert error_fields(answer) == ["destination_url"], destination
        assert error_fields(await _create(client, program, affiliate, utm_source="x" * 201)) == ["utm_source"]
        unknown = "00000000-0000-0000-0000-000000000000"
        answer = await client.post("/v1/links", json={**_body(program, affiliate), "program_id": unknown})
        assert error_fields(answer) == ["program_id"]
        answer = await client.post("/v1/links", json={**_body(program, affiliate), "affiliate_id": unknown})
        assert error_fields(answer) == ["affiliate_id"]
        archived = await make_program(runtime)
        await client.post(f"/v1/programs/{archived.id}/archive")
        assert error_fields(await _create(client, archived, affiliate)) == ["program_id"]
        async with session_of(runtime) as session:
            assert await session.scalar(select(func.count()).select_from(Link)) == 0


async def test_a_destination_with_non_ascii_characters_is_encoded(
    database_url: str, local_bus: EventBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program, affiliate = await make_program(runtime), await make_affiliate(runtime)
        link = (
            await _create(client, program, affiliate, destination_url="https://shop.example.com/café?q=ü")
        ).json()
        assert link["destination_url"] == "https://shop.example.com/caf%C3%A9?q=%C3%BC"
        answer = await client.get(f"/r/{link['code']}")
        assert answer.headers["location"].startswith(
            "https://shop.example.com/caf%C3%A9?q=%C3%BC&crm_click_id="
        )


async def test_links_are_listed_by_program_and_affiliate(
    database_url: str, local_bus: EventBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        one, other = await make_program(runtime), await make_program(runtime)
        ada, bob = await make_affiliate(runtime), await make_affiliate(runtime, name="Bob")
        ids = {
            (program.key, affiliate.name): (await _create(client, program, affiliate)).json()["id"]
            for program in (one, other)
            for affiliate in (ada, bob)
        }

        async def listed(**params: str) -> set[str]:
            found: set[str] = set()
            cursor: str | None = None
            while True:
                page = (
                    await client.get(
                        "/v1/links", params={**params, "limit": 1, **({"cursor": cursor} if cursor else {})}
                    )
                ).json()
                found |= {item["id"] for item in page["items"]}
                cursor = page["next_cursor"]
                if cursor is None:
                    return found

        assert await listed() == set(ids.values())
        assert await listed(program_id=str(one.id)) == {
            ids[(one.key, "Ada's Reviews")],
            ids[(one.key, "Bob")],
        }
        assert await listed(program_id=str(other.id), affiliate_id=str(bob.id)) == {ids[(other.key, "Bob")]}


async def test_a_patched_destination_is_followed_at_once_and_an_archived_link_still_redirects(
    database_url: str, local_bus: EventBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program, affiliate = await make_program(runtime), await make_affiliate(runtime)
        link = (await _create(client, program, affiliate, utm_source="ada")).json()
        url = f"/v1/links/{link['id']}"
        assert (
            (await client.get(f"/r/{link['code']}"))
            .headers["location"]
            .startswith("https://shop.example.com/pricing?utm_source=ada&")
        )  # now cached
        patched = await client.patch(
            url,
            json={"destination_url": "https://shop.example.com/new", "utm_source": None},
            headers={"If-Match": '"1"'},
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["utm_source"] is None
        assert (
            (await client.get(f"/r/{link['code']}"))
            .headers["location"]
            .startswith("https://shop.example.com/new?crm_click_id=")
        )
        assert problem(await client.patch(url, json={"utm_term": "x"}, headers={"If-Match": '"1"'}), 412)
        assert error_fields(await client.patch(url, json={"destination_url": None})) == ["destination_url"]
        assert error_fields(await client.patch(url, json={"code": "other"})) == ["code"]
        archived = await client.post(f"{url}/archive")
        assert archived.json()["archived_at"] is not None
        assert (await client.get(f"/r/{link['code']}")).status_code == 302
        await client.patch(f"/v1/affiliates/{affiliate.id}", json={"status": "suspended"})
        await client.post(f"/v1/programs/{program.id}/archive")
        assert (await client.get(f"/r/{link['code']}")).status_code == 302
