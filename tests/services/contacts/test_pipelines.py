"""Pipelines over HTTP through the real ASGI app, on SQLite and PostgreSQL: the seeded `sales` pipeline,
creating one, and changing its stages without pulling one from under a deal."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from shared.bus.embedded import EmbeddedBus
from tests.services.contacts.sales_support import (
    SALES_PIPELINE_ID,
    Api,
    contacts_api,
    error_fields,
    problem,
)

SALES_STAGES = [
    "prospecting",
    "qualification",
    "needs_analysis",
    "demo",
    "proposal",
    "negotiation",
    "commitment",
    "won",
    "lost",
]
RENEWALS: dict[str, Any] = {
    "key": "renewals",
    "name": "Renewals",
    "stages": [
        {"key": "due", "label": "Due", "probability": 60},
        {"key": "renewed", "label": "Renewed", "probability": 100, "kind": "won"},
        {"key": "churned", "label": "Churned", "probability": 0, "kind": "lost"},
    ],
}


@pytest.fixture
async def api(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> AsyncIterator[Api]:
    async with contacts_api(database_url, local_bus, tmp_path) as pair:
        yield pair


async def test_the_migration_seeds_the_sales_pipeline_with_its_nine_stages(api: Api) -> None:
    client, _ = api
    listed = (await client.get("/v1/pipelines")).json()
    [sales] = listed["items"]
    assert (sales["id"], sales["key"]) == (SALES_PIPELINE_ID, "sales")
    assert [stage["key"] for stage in sales["stages"]] == SALES_STAGES
    assert [stage["order"] for stage in sales["stages"]] == list(range(1, 10))
    assert [stage["kind"] for stage in sales["stages"]][-3:] == ["open", "won", "lost"]
    assert [stage["probability"] for stage in sales["stages"]][-2:] == [100, 0]
    read = await client.get(f"/v1/pipelines/{SALES_PIPELINE_ID}")
    assert (read.json(), read.headers["etag"]) == (sales, '"1"')


async def test_a_pipeline_is_created_listed_after_sales_and_its_key_is_unique(api: Api) -> None:
    client, _ = api
    created = await client.post("/v1/pipelines", json=RENEWALS)
    assert created.status_code == 201, created.text
    renewals = created.json()
    assert created.headers["location"] == f"http://testserver/v1/pipelines/{renewals['id']}"
    assert [(s["key"], s["order"], s["kind"]) for s in renewals["stages"]] == [
        ("due", 1, "open"),
        ("renewed", 2, "won"),
        ("churned", 3, "lost"),
    ]
    first = (await client.get("/v1/pipelines", params={"limit": 1})).json()
    second = (await client.get("/v1/pipelines", params={"limit": 1, "cursor": first["next_cursor"]})).json()
    assert [first["items"][0]["key"], second["items"][0]["key"]] == ["sales", "renewals"]
    assert second["next_cursor"] is None

    again = await client.post("/v1/pipelines", json={**RENEWALS, "name": "Other"})
    assert problem(again, 409)["existing_id"] == renewals["id"]


@pytest.mark.parametrize(
    "stages",
    [
        [
            {"key": "a", "label": "A", "probability": 10},
            {"key": "w", "label": "W", "probability": 100, "kind": "won"},
        ],
        [
            {"key": "a", "label": "A", "probability": 10},
            {"key": "w", "label": "W", "probability": 100, "kind": "won"},
            {"key": "w2", "label": "W2", "probability": 100, "kind": "won"},
            {"key": "l", "label": "L", "probability": 0, "kind": "lost"},
        ],
        [
            {"key": "a", "label": "A", "probability": 10},
            {"key": "a", "label": "A again", "probability": 20},
            {"key": "w", "label": "W", "probability": 100, "kind": "won"},
            {"key": "l", "label": "L", "probability": 0, "kind": "lost"},
        ],
        [
            {"key": "a", "label": "A", "probability": 10},
            {"key": "w", "label": "W", "probability": 90, "kind": "won"},
            {"key": "l", "label": "L", "probability": 0, "kind": "lost"},
        ],
        [
            {"key": "w", "label": "W", "probability": 100, "kind": "won"},
            {"key": "l", "label": "L", "probability": 0, "kind": "lost"},
            {"key": "l2", "label": "L2", "probability": 0, "kind": "lost"},
        ],
    ],
    ids=["too-few", "two-won", "repeated-key", "won-below-100", "no-open"],
)
async def test_stages_that_do_not_make_a_pipeline_are_a_422_naming_stages(
    api: Api, stages: list[dict[str, Any]]
) -> None:
    client, _ = api
    response = await client.post("/v1/pipelines", json={"key": "broken", "name": "Broken", "stages": stages})
    assert error_fields(response) == ["stages"]
    assert len((await client.get("/v1/pipelines")).json()["items"]) == 1


async def test_stages_are_added_reordered_relabelled_and_removed_by_a_patch(api: Api) -> None:
    client, _ = api
    pipeline = (await client.post("/v1/pipelines", json=RENEWALS)).json()
    url = f"/v1/pipelines/{pipeline['id']}"
    stages = [
        {"key": "notice", "label": "Notice sent", "probability": 30},
        {"key": "due", "label": "Renewal due", "probability": 60},
        {"key": "churned", "label": "Churned", "probability": 0, "kind": "lost"},
        {"key": "renewed", "label": "Renewed", "probability": 100, "kind": "won"},
    ]
    response = await client.patch(
        url, json={"name": "Renewals 2027", "stages": stages}, headers={"If-Match": '"1"'}
    )
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"2"'
    body = response.json()
    assert body["name"] == "Renewals 2027"
    assert [(s["key"], s["label"], s["order"]) for s in body["stages"]] == [
        ("notice", "Notice sent", 1),
        ("due", "Renewal due", 2),
        ("churned", "Churned", 3),
        ("renewed", "Renewed", 4),
    ]
    assert (await client.get(url)).json() == body

    removed = await client.patch(url, json={"stages": [s for s in stages if s["key"] != "notice"]})
    assert [s["key"] for s in removed.json()["stages"]] == ["due", "churned", "renewed"]
    stale = await client.patch(url, json={"name": "x"}, headers={"If-Match": '"1"'})
    assert (problem(stale, 412)["status"], stale.headers["etag"]) == (412, '"3"')
    assert error_fields(await client.patch(url, json={"name": None})) == ["name"]
    assert problem(await client.patch(f"/v1/pipelines/{uuid.uuid4()}", json={"name": "x"}), 404)


async def test_a_stage_a_deal_is_in_can_neither_be_removed_nor_change_kind(api: Api) -> None:
    client, _ = api
    pipeline = (await client.post("/v1/pipelines", json=RENEWALS)).json()
    url = f"/v1/pipelines/{pipeline['id']}"
    deal = await client.post(
        "/v1/deals", json={"name": "Renew Acme", "pipeline_id": pipeline["id"], "stage": "due"}
    )
    assert deal.status_code == 201, deal.text

    open_stages = [{"key": "later", "label": "Later", "probability": 10}]
    closed = RENEWALS["stages"][1:]
    without_due = await client.patch(url, json={"stages": open_stages + closed})
    assert "due (1 deals)" in problem(without_due, 409)["detail"]
    due_as_lost = [
        {"key": "later", "label": "Later", "probability": 10},
        closed[0],
        {"key": "due", "label": "Due", "probability": 0, "kind": "lost"},
    ]
    assert problem(await client.patch(url, json={"stages": due_as_lost}), 409)
    after = await client.get(url)
    assert (after.json()["stages"], after.headers["etag"]) == (pipeline["stages"], '"1"')

    moved = await client.post(
        f"/v1/deals/{deal.json()['id']}/stage", json={"stage": "renewed", "reason": "price"}
    )
    assert moved.status_code == 200, moved.text
    assert (await client.patch(url, json={"stages": open_stages + closed})).status_code == 200
