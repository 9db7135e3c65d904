"""`GET /r/{code}`: the 302, its cookies and landing URL, bots, the 404 page, and the durable click path
(journal, drain, database and outbox, exactly once, also after a killed process)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
from sqlalchemy import func, select

from services.referrals.clicks import service as clicks
from services.referrals.clicks.journal import FOLDER, ClickJournal
from services.referrals.clicks.models import Click
from services.referrals.clicks.models import ClickJournal as JournalRow
from services.referrals.clicks.path import click_path
from services.referrals.clicks.service import ClickLine
from shared.bus.base import EventBus
from shared.db import utc_now
from shared.runtime import ServiceRuntime
from tests.services.referrals.support import (
    make_affiliate,
    make_link,
    make_program,
    outbox_events,
    referrals_api,
    session_of,
)

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


async def _clicks(runtime: ServiceRuntime) -> list[Click]:
    async with session_of(runtime) as session:
        return list(await session.scalars(select(Click).order_by(Click.clicked_at)))


async def _settled(runtime: ServiceRuntime) -> None:
    """Everything journaled so far is in the database (the drain the background task also runs)."""
    await clicks.drain(click_path(runtime))


async def test_a_click_redirects_with_utm_tags_and_the_click_id_and_reaches_the_database_once(
    database_url: str, local_bus: EventBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        program = await make_program(runtime, window_days=14)
        affiliate = await make_affiliate(runtime)
        link = await make_link(
            runtime,
            program,
            affiliate,
            destination_url="https://shop.example.com/p?plan=pro&utm_source=old#buy",
        )
        async with session_of(runtime) as session:
            stored = await session.merge(link)
            stored.utm_source, stored.utm_campaign = "ada", "spring sale"

        answer = await client.get(
            f"/r/{link.code}",
            headers={"User-Agent": BROWSER, "Referer": "https://blog.example.org/review"},
        )

        assert answer.status_code == 302
        location = urlsplit(answer.headers["location"])
        assert (location.scheme, location.netloc, location.path, location.fragment) == (
            "https",
            "shop.example.com",
            "/p",
            "buy",
        )
        query = parse_qsl(location.query)
        click_id = answer.cookies["crm_click_id"]
        # The destination's own parameter kept, the link's UTM tags replace same-named ones, click id last.
        assert query == [
            ("plan", "pro"),
            ("utm_source", "ada"),
            ("utm_campaign", "spring sale"),
            ("crm_click_id", click_id),
        ]
        assert answer.headers["cache-control"] == "no-store"
        cookies = answer.headers.get_list("set-cookie")
        click_cookie = next(c for c in cookies if c.startswith("crm_click_id="))
        visitor_cookie = next(c for c in cookies if c.startswith("crm_visitor="))
        assert f"Max-Age={14 * 86400}" in click_cookie
        assert "HttpOnly" not in click_cookie
        assert "HttpOnly" in visitor_cookie
        assert f"Max-Age={365 * 86400}" in visitor_cookie

        await _settled(runtime)
        await _settled(runtime)  # a second drain applies nothing again
        [click] = await _clicks(runtime)
        assert click.id == click_id
        assert click.visitor_id == answer.cookies["crm_visitor"]
        assert (click.link_id, click.program_id, click.affiliate_id) == (link.id, program.id, affiliate.id)
        assert click.user_agent == BROWSER
        assert click.referrer == "https://blog.example.org/review"
        assert click.landing_url == answer.headers["location"]
        assert click.ip_hash is not None
        assert len(click.ip_hash) == 64
        assert not click.is_bot
        [event] = await outbox_events(runtime, "crm.click.recorded")
        assert event["key"] == click_id
        assert event["click_id"] == click_id
        assert event["link_id"] == str(link.id)
        assert event["is_bot"] is False


async def test_the_visitor_cookie_is_kept_across_clicks_and_each_click_has_its_own_id(
    database_url: str, local_bus: EventBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        link = await make_link(runtime, await make_program(runtime), await make_affiliate(runtime))
        first = await client.get(f"/r/{link.code}", headers={"User-Agent": BROWSER})
        visitor = first.cookies["crm_visitor"]
        second = await client.get(
            f"/r/{link.code}", headers={"User-Agent": BROWSER, "Cookie": f"crm_visitor={visitor}"}
        )
        assert second.cookies["crm_visitor"] == visitor
        assert second.cookies["crm_click_id"] != first.cookies["crm_click_id"]
        # A destination without a query gets one.
        assert second.headers["location"].startswith("https://shop.example.com/pricing?crm_click_id=")
        await _settled(runtime)
        assert {click.visitor_id for click in await _clicks(runtime)} == {visitor}


async def test_bots_are_recorded_flagged(database_url: str, local_bus: EventBus, tmp_path: Path) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        link = await make_link(runtime, await make_program(runtime), await make_affiliate(runtime))
        for agent in ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "curl/8.5.0"):
            answer = await client.get(f"/r/{link.code}", headers={"User-Agent": agent})
            assert answer.status_code == 302
        await client.get(f"/r/{link.code}", headers={"User-Agent": BROWSER})
        await _settled(runtime)
        assert sorted(click.is_bot for click in await _clicks(runtime)) == [False, True, True]
        flagged = [event["is_bot"] for event in await outbox_events(runtime, "crm.click.recorded")]
        assert sorted(flagged) == [False, True, True]


async def test_an_unknown_code_is_a_plain_404_page(
    database_url: str, local_bus: EventBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        for path in ("/r/no-such-code", "/r/a%20b%3Cscript%3E", "/r/x", "/r/" + "a" * 65, "/r/caf%C3%A9"):
            answer = await client.get(path)
            assert answer.status_code == 404, path
            assert answer.headers["content-type"].startswith("text/html")
            assert "Link not found" in answer.text
        # And once the code exists, it redirects (the missing answer is not kept).
        link = await make_link(
            runtime, await make_program(runtime), await make_affiliate(runtime), code="no-such-code"
        )
        click_path(runtime).cache.forget(link.code)
        assert (await client.get("/r/no-such-code")).status_code == 302
        await _settled(runtime)
        assert len(await _clicks(runtime)) == 1


async def test_the_background_task_drains_without_being_asked(
    database_url: str, local_bus: EventBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        link = await make_link(runtime, await make_program(runtime), await make_affiliate(runtime))
        answers = [await client.get(f"/r/{link.code}", headers={"User-Agent": BROWSER}) for _ in range(20)]
        ids = {answer.cookies["crm_click_id"] for answer in answers}
        page = httpx.Response(200, json={"items": []})
        for _attempt in range(200):
            page = await client.get("/v1/clicks", params={"link_id": str(link.id), "limit": 100})
            if len(page.json()["items"]) == 20:
                break
            await asyncio.sleep(0.05)  # waiting for something to happen, not proving it does not
        assert {item["id"] for item in page.json()["items"]} == ids
    # A clean stop applied and deleted its journal.
    assert os.listdir(tmp_path / FOLDER) == []


def _journal_as_a_killed_process_left_it(folder: Path, lines: list[ClickLine], partial: bytes = b"") -> Path:
    """What a process that was killed leaves: a journal file whose lock died with it."""
    journal = ClickJournal(folder)
    for line in lines:
        journal.append(line.encode())
    name = journal.current
    assert name is not None
    if partial:
        with (folder / name).open("ab") as file:
            file.write(partial)
    journal.close()  # the lock goes, as it does when the kernel closes a dead process's files
    return folder / name


def _line(link_id: uuid.UUID, program_id: uuid.UUID, affiliate_id: uuid.UUID, code: str) -> ClickLine:
    return ClickLine(
        id=secrets.token_urlsafe(12),
        visitor_id=secrets.token_urlsafe(12),
        link_id=link_id,
        code=code,
        program_id=program_id,
        affiliate_id=affiliate_id,
        clicked_at=utc_now(),
        ip_hash=None,
        user_agent=BROWSER,
        referrer=None,
        landing_url="https://shop.example.com/pricing?crm_click_id=x",
        is_bot=False,
    )


async def test_a_journal_left_by_a_killed_process_is_drained_at_start_with_no_loss_and_no_double(
    database_url: str, local_bus: EventBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (_client, runtime):
        link = await make_link(runtime, await make_program(runtime), await make_affiliate(runtime))
    lines = [_line(link.id, link.program_id, link.affiliate_id, link.code) for _ in range(50)]
    folder = tmp_path / FOLDER
    left = _journal_as_a_killed_process_left_it(folder, lines, partial=b'{"v":1,"id":"unfinished')
    # The killed process had applied the first 20 and committed, then died before its bookkeeping
    # moved on: its row says 0, so those 20 come again and must not double.
    async with referrals_api(database_url, local_bus, tmp_path) as (_client, runtime):
        async with session_of(runtime) as session:
            for line in lines[:20]:
                session.add(Click(**clicks._row(line.encode())))
            session.add(JournalRow(name=left.name, applied_offset=0))
        await clicks.drain(click_path(runtime), orphans=True)
        assert {click.id for click in await _clicks(runtime)} == {line.id for line in lines}
        events = await outbox_events(runtime, "crm.click.recorded")
        # The 20 already there were announced with their insert then (not in this outbox); the rest once.
        assert sorted(event["click_id"] for event in events) == sorted(line.id for line in lines[20:])
        assert not left.exists()
        async with session_of(runtime) as session:
            assert await session.scalar(select(func.count()).select_from(JournalRow)) == 0


async def test_a_journal_of_a_live_process_is_left_to_it(
    database_url: str, local_bus: EventBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (_client, runtime):
        link = await make_link(runtime, await make_program(runtime), await make_affiliate(runtime))
        live = ClickJournal(tmp_path / FOLDER)
        live.append(_line(link.id, link.program_id, link.affiliate_id, link.code).encode())
        try:
            await clicks.drain(click_path(runtime), orphans=True)
            assert await _clicks(runtime) == []
            assert live.current is not None
            assert (tmp_path / FOLDER / live.current).exists()
        finally:
            live.close()
        await clicks.drain(click_path(runtime), orphans=True)
        assert len(await _clicks(runtime)) == 1


async def test_the_journal_line_round_trips() -> None:
    line = _line(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), "abc")
    row = clicks._row(line.encode())
    assert row["id"] == line.id
    assert row["clicked_at"] == line.clicked_at
    assert json.loads(line.encode())["v"] == 1


async def test_full_journals_are_rotated_applied_and_deleted(
    database_url: str, local_bus: EventBus, tmp_path: Path
) -> None:
    async with referrals_api(database_url, local_bus, tmp_path) as (client, runtime):
        link = await make_link(runtime, await make_program(runtime), await make_affiliate(runtime))
        path = click_path(runtime)
        path.journal.rotate_bytes = 1  # every drain begins a new file
        names = set()
        for _ in range(3):
            assert (await client.get(f"/r/{link.code}", headers={"User-Agent": BROWSER})).status_code == 302
            names.add(path.journal.current)
            await _settled(runtime)
        assert len(names) == 3
        assert os.listdir(tmp_path / FOLDER) == []  # each retired file applied, then deleted
        assert len(await _clicks(runtime)) == 3
        assert len(await outbox_events(runtime, "crm.click.recorded")) == 3


def test_a_journal_with_fsync_writes_the_same_lines(tmp_path: Path) -> None:
    journal = ClickJournal(tmp_path, fsync=True)
    line = _line(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), "abc").encode()
    journal.append(line)
    assert journal.current is not None
    assert (tmp_path / journal.current).read_bytes() == line
    journal.close()
