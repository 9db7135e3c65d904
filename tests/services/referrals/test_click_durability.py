"""The click path end to end: each click on the bus exactly once (embedded log and Kafka), and a real
`crm serve referrals` killed with SIGKILL mid-traffic loses and doubles none of the clicks it answered."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from services.referrals.clicks.journal import FOLDER
from services.referrals.clicks.models import Click
from shared.bus.base import EventBus
from shared.bus.kafka import KafkaBus
from shared.bus.reading import read_to_end
from shared.db import Database, read_scope
from shared.events import topics
from shared.testing.apps import ADMIN_HEADERS
from shared.testing.distributed import distributed_env
from shared.testing.processes import CrmProcess, free_port
from tests.services.referrals.support import (
    make_affiliate,
    make_link,
    make_program,
    outbox_events,
    referrals_api,
)

BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Safari/605.1.15"
)


async def _click_keys_on_the_bus(bus: EventBus, wanted: set[str]) -> list[str]:
    seen: list[str] = []
    async for _reader, records in read_to_end(bus, [topics.REFERRALS.name], group_prefix="test.clicks"):
        seen += [record.key for record in records if record.key in wanted]
    return seen


async def test_each_click_reaches_the_bus_exactly_once(bus: EventBus, tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'service.sqlite'}"
    async with referrals_api(database_url, bus, tmp_path, relay=True) as (client, runtime):
        link = await make_link(runtime, await make_program(runtime), await make_affiliate(runtime))
        answers = await asyncio.gather(
            *(client.get(f"/r/{link.code}", headers={"User-Agent": BROWSER}) for _ in range(30))
        )
        ids = {answer.cookies["crm_click_id"] for answer in answers}
        for _attempt in range(400):  # the drain, then the relay: waiting for them to happen
            if not await outbox_events(runtime) and len(await _stored(runtime.database, ids)) == 30:
                break
            await asyncio.sleep(0.05)
        assert sorted(await _click_keys_on_the_bus(bus, ids)) == sorted(ids)


async def _stored(database: Database, ids: set[str]) -> list[str]:
    async with read_scope(database) as session:
        return list(await session.scalars(select(Click.id).where(Click.id.in_(ids))))


async def _fire(base: str, code: str, count: int) -> set[str]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        answers = await asyncio.gather(
            *(client.get(f"/r/{code}", headers={"User-Agent": BROWSER}) for _ in range(count))
        )
    assert {answer.status_code for answer in answers} == {302}
    return {answer.cookies["crm_click_id"] for answer in answers}


@pytest.mark.e2e
@pytest.mark.kafka
@pytest.mark.postgres
async def test_a_killed_process_loses_and_doubles_no_click_it_answered(
    postgres_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = distributed_env(postgres_url, kafka_bootstrap, tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def serve() -> CrmProcess:
        return CrmProcess(
            ["serve", "referrals", "--port", str(port)],
            env=env,
            log_path=tmp_path / "referrals.log",
            health_url=f"{base}/healthz",
        ).start(timeout_s=90)

    process = serve()
    try:
        async with httpx.AsyncClient(base_url=base, headers=ADMIN_HEADERS, timeout=30) as admin:
            program = (
                await admin.post("/v1/programs", json={"key": "p", "name": "P", "currency": "EUR"})
            ).json()
            affiliate = (await admin.post("/v1/affiliates", json={"name": "Ada"})).json()
            link = (
                await admin.post(
                    "/v1/links",
                    json={
                        "program_id": program["id"],
                        "affiliate_id": affiliate["id"],
                        "destination_url": "https://shop.example.com/",
                    },
                )
            ).json()
        ids = await _fire(base, link["code"], 200)
        await asyncio.to_thread(process.kill)
    finally:
        process.stop()
    # Its journal stays behind (only a clean stop deletes it), however much of it was applied.
    assert len(list((tmp_path / FOLDER).iterdir())) == 1
    database = Database(
        make_url(env["CRM_REFERRALS_DATABASE_URL"])
        .set(drivername="postgresql+asyncpg")
        .render_as_string(hide_password=False)
    )
    try:
        process = serve()
        try:
            ids |= await _fire(base, link["code"], 20)  # the new process's own clicks too
            # 15 s at most: the dead process's journal is drained at start-up, not at the next 30 s scan.
            for _attempt in range(300):
                async with read_scope(database) as session:
                    count = await session.scalar(select(func.count()).select_from(Click))
                if count == len(ids):
                    break
                await asyncio.sleep(0.05)
            assert set(await _stored(database, ids)) == ids
            async with read_scope(database) as session:
                assert await session.scalar(select(func.count()).select_from(Click)) == len(ids)
            bus = KafkaBus(kafka_bootstrap, client_id="crm-test")
            await bus.start()
            try:
                for _attempt in range(600):
                    on_bus = await _click_keys_on_the_bus(bus, ids)
                    if len(on_bus) >= len(ids):
                        break
                    await asyncio.sleep(0.1)
                assert sorted(on_bus) == sorted(ids)
            finally:
                await bus.stop()
        finally:
            process.stop()
    finally:
        await database.dispose()
    # The dead process's journal was applied and deleted at start-up; the second stopped cleanly.
    assert list((tmp_path / FOLDER).iterdir()) == []
