"""POST /v1/contacts/search over HTTP, on SQLite and PostgreSQL: every operator on standard fields, on
`tags` and `emails`, and on custom properties of every type; nested groups; sorting with cursors; totals;
and 422 problems that name the place in the request.

Each test writes a small, known set of contacts and computes what a search should answer from that data
(`PEOPLE`), so no expectation is written out by hand.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Dialect, make_url

from services.contacts.app import DEFINITION
from services.contacts.contacts.fields import CONTACT_FIELDS
from services.contacts.contacts.models import Contact
from services.contacts.contacts.repository import NEWEST_FIRST
from services.contacts.properties.models import PropertyDefinition
from services.contacts.search.compiler import MAX_LIST, FilterCompiler, requires_value
from services.contacts.search.schemas import MAX_CONDITIONS, MAX_DEPTH, Filter, Sort, SortDirection
from shared.bus.embedded import EmbeddedBus
from shared.runtime import ServiceRuntime
from shared.testing.apps import service_client

Api = tuple[httpx.AsyncClient, ServiceRuntime]
JSON = dict[str, Any]

PROPERTIES: list[JSON] = [
    {"key": "score", "type": "number"},
    {"key": "plan", "type": "enum", "options": ["free", "pro", "enterprise"]},
    {"key": "features", "type": "multi_enum", "options": ["api", "sso", "audit"]},
    {"key": "vip", "type": "bool"},
    {"key": "renewal", "type": "date"},
    {"key": "nickname", "type": "string"},
]
FEATURE_ORDER = ["api", "sso", "audit"]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class Person:
    """A contact as the test writes it: the upserted record, and the columns only the stream feeds
    (visits, last activity) or the server sets (creation time), written straight into the table."""

    record: JSON
    created_at: datetime
    visits: int
    last_activity_at: datetime | None = None
    id: str = ""
    emails: set[str] = field(default_factory=set)

    def get(self, name: str) -> Any:
        if name == "created_at":
            return self.created_at
        if name == "visits":
            return self.visits
        if name == "last_activity_at":
            return self.last_activity_at
        if name == "birthday":
            born = self.record.get("birthday")
            return date.fromisoformat(born) if born else None
        if name == "lifecycle_stage":
            return self.record.get("lifecycle_stage", "subscriber")
        if name == "email":
            email = self.record.get("email")
            return email.lower() if email else None
        if name == "tags":
            return set(self.record.get("tags", []))
        if name == "emails":
            return self.emails
        if name.startswith("properties."):
            return self.prop(name.removeprefix("properties."))
        return self.record.get(name)

    def prop(self, key: str) -> Any:
        value = self.record.get("properties", {}).get(key)
        if key == "renewal" and value is not None:
            return date.fromisoformat(value)
        return value


PEOPLE: dict[str, Person] = {
    "ada": Person(
        {
            "email": "ada@example.com",
            "emails": ["ada.work@example.com"],
            "first_name": "Ada",
            "last_name": "Lovelace",
            "city": "London",
            "country": "GB",
            "lifecycle_stage": "customer",
            "birthday": "1990-12-10",
            "company_name": "Acme_Corp",
            "tags": ["vip", "newsletter"],
            "properties": {
                "score": 90,
                "plan": "pro",
                "features": ["api", "sso"],
                "vip": True,
                "renewal": "2026-03-31",
                "nickname": "The Countess",
            },
        },
        created_at=_at("2026-03-01T00:00:00"),
        visits=12,
        last_activity_at=_at("2026-03-05T10:00:00"),
    ),
    "grace": Person(
        {
            "email": "grace@example.com",
            "first_name": "Grace",
            "last_name": "Hopper",
            "city": "New York",
            "country": "US",
            "lifecycle_stage": "lead",
            "birthday": "1985-01-01",
            "company_name": "AcmeXCorp",
            "tags": ["newsletter"],
            "properties": {
                "score": 50,
                "plan": "free",
                "features": ["sso"],
                "vip": False,
                "renewal": "2026-04-01",
                "nickname": "Amazing Grace",
            },
        },
        # The very end of 2 March: a bare-date upper bound must still take it in.
        created_at=_at("2026-03-02T23:59:59.999999"),
        visits=3,
    ),
    "brian": Person(
        {
            "email": "brian@example.com",
            "first_name": "Brian",
            "last_name": "Hopper",
            "city": "Boston",
            "country": "US",
            "lifecycle_stage": "lead",
            "tags": [],
            "properties": {
                "score": 50,
                "plan": "enterprise",
                "features": ["audit", "api"],
                "renewal": "2026-03-01",
            },
        },
        created_at=_at("2026-03-03T00:00:00"),
        visits=0,
        last_activity_at=_at("2026-03-03T09:30:00"),
    ),
    "alan": Person(
        {
            "email": "alan@example.com",
            "emails": ["alan@bletchley.example.com"],
            "first_name": "Alan",
            "last_name": "Turing",
            "city": "London",
            "country": "GB",
            "lifecycle_stage": "opportunity",
            "birthday": "1912-06-23",
            "tags": ["VIP"],
            "properties": {"score": 100, "plan": "pro", "vip": True, "nickname": "100%_real"},
        },
        created_at=_at("2026-02-28T23:59:59"),
        visits=40,
        last_activity_at=_at("2026-03-02T23:00:00"),
    ),
    "nameless": Person({"email": "anon1@example.com"}, created_at=_at("2026-01-15T08:00:00"), visits=1),
    "zed": Person(
        {
            "email": "zed@example.com",
            "first_name": "Zed",
            "city": "Berlin",
            "country": "DE",
            "lifecycle_stage": "churned",
            "birthday": "2000-02-29",
            "tags": ["partner"],
            "properties": {
                "score": -5.5,
                "features": [],
                "vip": False,
                "renewal": "2025-12-31",
                "nickname": "1000 real",
            },
        },
        created_at=_at("2026-03-01T12:00:00"),
        visits=7,
        last_activity_at=_at("2026-01-01T00:00:00"),
    ),
    "edsger": Person(
        {
            "email": "edsger@example.com",
            "first_name": "Edsger",
            "last_name": "Dijkstra",
            "city": "Amsterdam",
            "country": "NL",
            "lifecycle_stage": "customer",
            "birthday": "1930-05-11",
            "tags": ["vip", "partner"],
            "properties": {
                "score": 0,
                "plan": "free",
                "features": ["audit", "sso", "api"],
                "renewal": "2026-03-31",
            },
        },
        created_at=_at("2026-03-01T12:00:00"),  # the same time as zed: the id breaks the tie
        visits=12,
        last_activity_at=_at("2026-03-05T10:00:00"),
    ),
    "barbara": Person(
        {
            "external_ids": [{"system": "shop", "id": "7"}],
            "first_name": "Barbara",
            "last_name": "Liskov",
            "city": "Boston",
            "country": "US",
            "properties": {"plan": "enterprise", "vip": True},
        },
        created_at=_at("2026-04-10T10:00:00"),
        visits=2,
    ),
    "ken": Person(
        {
            "email": "KEN@Example.com",
            "first_name": "Ken",
            "last_name": "Thompson",
            "country": "US",
            "lifecycle_stage": "evangelist",
            "properties": {"score": 75.25, "nickname": "kenny"},
        },
        created_at=_at("2026-03-02T00:00:00"),
        visits=5,
    ),
    "margaret": Person(
        {
            "email": "margaret@example.com",
            "first_name": "Margaret",
            "last_name": "Hamilton",
            "city": "Boston",
            "country": "US",
            "lifecycle_stage": "other",
            "birthday": "1936-08-17",
            "tags": ["newsletter"],
            "properties": {"score": 100, "plan": "pro", "features": ["sso"], "renewal": "2026-03-30"},
        },
        created_at=_at("2026-03-02T00:00:00"),  # the same time as ken
        visits=25,
        last_activity_at=_at("2026-03-02T00:00:00"),
    ),
}


@dataclass
class World:
    client: httpx.AsyncClient
    runtime: ServiceRuntime
    people: list[Person]

    def ids(self, predicate: Callable[[Person], bool]) -> set[str]:
        return {person.id for person in self.people if predicate(person)}

    def order(self, value: Callable[[Person], Any], *, descending: bool) -> list[str]:
        """The order the API promises: by the value, ties by id, both in the direction asked;
        records without a value last, among themselves by id."""
        present = [p for p in self.people if value(p) is not None]
        absent = [p for p in self.people if value(p) is None]
        present.sort(key=lambda p: (value(p), uuid.UUID(p.id)), reverse=descending)
        absent.sort(key=lambda p: uuid.UUID(p.id), reverse=descending)
        return [p.id for p in present + absent]


@pytest.fixture
async def world(database_url: str, local_bus: EmbeddedBus, tmp_path: Path) -> AsyncIterator[World]:
    async with service_client(
        DEFINITION, database_url=database_url, bus=local_bus, data_dir=tmp_path, relay=False
    ) as (client, runtime):
        for definition in PROPERTIES:
            body = {"object_type": "contact", "label": definition["key"].title(), "personal_data": False}
            response = await client.post("/v1/properties", json={**body, **definition})
            assert response.status_code == 201, response.text
        people = [Person(**vars(person)) for person in PEOPLE.values()]  # a copy per test
        upserted = await client.post(
            "/v1/contacts/batch/upsert", json={"records": [p.record for p in people]}
        )
        assert upserted.status_code == 200, upserted.text
        results = upserted.json()["results"]
        assert [result["status"] for result in results] == ["created"] * len(people), results
        async with runtime.database.sessionmaker() as session:
            for person, result in zip(people, results, strict=True):
                person.id = result["id"]
                primary = person.get("email")
                person.emails = {*([primary] if primary else []), *person.record.get("emails", [])}
                await session.execute(
                    update(Contact)
                    .where(Contact.id == uuid.UUID(person.id))
                    .values(
                        created_at=person.created_at,
                        visits=person.visits,
                        last_activity_at=person.last_activity_at,
                    )
                )
            await session.commit()
        yield World(client, runtime, people)


async def _search(client: httpx.AsyncClient, body: JSON) -> JSON:
    response = await client.post("/v1/contacts/search", json=body)
    assert response.status_code == 200, (body, response.text)
    page: JSON = response.json()
    return page


async def _walk(client: httpx.AsyncClient, body: JSON) -> tuple[list[str], list[JSON]]:
    """Every page of a search, following `next_cursor`: the ids in the order given, and the pages."""
    ids: list[str] = []
    pages: list[JSON] = []
    cursor: str | None = None
    while True:
        page = await _search(client, {**body, **({"cursor": cursor} if cursor else {})})
        pages.append(page)
        ids += [item["id"] for item in page["items"]]
        assert len(page["items"]) <= body.get("limit", 50)
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, pages
        assert len(page["items"]) == body.get("limit", 50), "only the last page may be short"
        assert len(pages) <= 100, "the walk does not end"


Case = tuple[JSON, Callable[[Person], bool]]


def _cond(name: str, op: str, value: Any = None) -> JSON:
    condition: JSON = {"field": name, "op": op}
    if op not in ("exists", "not_exists"):
        condition["value"] = value
    return condition


async def _check(world: World, cases: list[Case]) -> None:
    """Each filter matches exactly the people its predicate picks, each once; every mismatch is listed."""
    names = {person.id: key for key, person in zip(PEOPLE, world.people, strict=True)}
    wrong = []
    for condition, predicate in cases:
        ids, _pages = await _walk(world.client, {"filter": condition, "limit": 4})
        expected = world.ids(predicate)
        if len(ids) != len(set(ids)) or set(ids) != expected:
            got = sorted(names[i] for i in ids)
            wrong.append(f"{json.dumps(condition)}: got {got}, expected {sorted(names[i] for i in expected)}")
    assert not wrong, "\n".join(wrong)


def _value(name: str) -> Callable[[Person], Any]:
    return lambda person: person.get(name)


async def test_text_fields_take_every_operator(world: World) -> None:
    first, last, city = _value("first_name"), _value("last_name"), _value("city")
    company = _value("company_name")
    await _check(
        world,
        [
            (_cond("first_name", "eq", "Ada"), lambda p: first(p) == "Ada"),
            (_cond("last_name", "eq", "Hopper"), lambda p: last(p) == "Hopper"),
            # neq and not_in also match contacts without the value.
            (_cond("last_name", "neq", "Hopper"), lambda p: last(p) != "Hopper"),
            (_cond("city", "in", ["London", "Boston"]), lambda p: city(p) in ("London", "Boston")),
            (_cond("city", "not_in", ["London", "Boston"]), lambda p: city(p) not in ("London", "Boston")),
            (_cond("city", "exists"), lambda p: city(p) is not None),
            (_cond("city", "not_exists"), lambda p: city(p) is None),
            # contains: a case-insensitive substring ...
            (_cond("first_name", "contains", "A"), lambda p: "a" in (first(p) or "").lower()),
            # ... in which % and _ are themselves, not wildcards.
            (_cond("company_name", "contains", "e_C"), lambda p: "e_C" in (company(p) or "")),
            (_cond("company_name", "contains", "%"), lambda p: False),
            (_cond("last_name", "lt", "I"), lambda p: last(p) is not None and last(p) < "I"),
            (_cond("last_name", "gte", "Liskov"), lambda p: last(p) is not None and last(p) >= "Liskov"),
            (
                _cond("last_name", "between", ["H", "Lovelace"]),
                lambda p: "H" <= (last(p) or "") <= "Lovelace",
            ),
            (_cond("country", "eq", "GB"), lambda p: p.get("country") == "GB"),
            # Emails are kept lower-cased, and so compared.
            (_cond("email", "eq", "KEN@example.COM"), lambda p: p.get("email") == "ken@example.com"),
            (_cond("email", "contains", "@EXAMPLE.com"), lambda p: "@example.com" in (p.get("email") or "")),
            (_cond("email", "not_exists"), lambda p: p.get("email") is None),
        ],
    )


async def test_the_lifecycle_stage_takes_only_its_stages(world: World) -> None:
    stage = _value("lifecycle_stage")
    await _check(
        world,
        [
            (_cond("lifecycle_stage", "eq", "lead"), lambda p: stage(p) == "lead"),
            (_cond("lifecycle_stage", "neq", "customer"), lambda p: stage(p) != "customer"),
            (
                _cond("lifecycle_stage", "in", ["customer", "opportunity"]),
                lambda p: stage(p) in ("customer", "opportunity"),
            ),
            (
                _cond("lifecycle_stage", "not_in", ["lead", "subscriber"]),
                lambda p: stage(p) not in ("lead", "subscriber"),
            ),
        ],
    )
    for value, place in (("prospect", "filter.value"), (["lead", "prospect"], "filter.value.1")):
        op = "in" if isinstance(value, list) else "eq"
        await _refused(world.client, {"filter": _cond("lifecycle_stage", op, value)}, place)


async def test_dates_and_times_compare_as_such_and_a_bare_date_on_a_time_is_the_whole_day(
    world: World,
) -> None:
    born, created, active = _value("birthday"), _value("created_at"), _value("last_activity_at")

    def created_in(low: str, high: str) -> Callable[[Person], bool]:
        return lambda p: _at(low) <= created(p) <= _at(high)

    def on_day(value: Callable[[Person], Any], day: str) -> Callable[[Person], bool]:
        return lambda p: value(p) is not None and value(p).date() == date.fromisoformat(day)

    await _check(
        world,
        [
            # A date column.
            (
                _cond("birthday", "lt", "1950-01-01"),
                lambda p: born(p) is not None and born(p) < date(1950, 1, 1),
            ),
            (
                _cond("birthday", "gte", "1990-12-10"),
                lambda p: born(p) is not None and born(p) >= date(1990, 12, 10),
            ),
            (
                _cond("birthday", "between", ["1930-05-11", "1985-01-01"]),
                lambda p: born(p) is not None and date(1930, 5, 11) <= born(p) <= date(1985, 1, 1),
            ),
            (_cond("birthday", "eq", "2000-02-29"), lambda p: born(p) == date(2000, 2, 29)),
            (_cond("birthday", "neq", "1990-12-10"), lambda p: born(p) != date(1990, 12, 10)),
            (_cond("birthday", "not_exists"), lambda p: born(p) is None),
            # Timestamps with bare dates: each bound is a whole day, both included.
            (
                _cond("created_at", "between", ["2026-03-01", "2026-03-02"]),
                created_in("2026-03-01T00:00:00", "2026-03-02T23:59:59.999999"),
            ),
            (_cond("created_at", "eq", "2026-03-02"), on_day(created, "2026-03-02")),
            (_cond("created_at", "neq", "2026-03-02"), lambda p: not on_day(created, "2026-03-02")(p)),
            (_cond("created_at", "gt", "2026-03-02"), lambda p: created(p) >= _at("2026-03-03T00:00:00")),
            (_cond("created_at", "gte", "2026-03-02"), lambda p: created(p) >= _at("2026-03-02T00:00:00")),
            (_cond("created_at", "lt", "2026-03-01"), lambda p: created(p) < _at("2026-03-01T00:00:00")),
            (_cond("created_at", "lte", "2026-03-01"), lambda p: created(p) < _at("2026-03-02T00:00:00")),
            (_cond("created_at", "in", ["2026-01-15", "2026-03-03"]), lambda p: created(p).day in (15, 3)),
            (
                _cond("created_at", "in", ["2026-03-01T12:00:00Z", "2026-03-03"]),
                lambda p: created(p) == _at("2026-03-01T12:00:00") or on_day(created, "2026-03-03")(p),
            ),
            (
                _cond("birthday", "in", ["1990-12-10", "1936-08-17"]),
                lambda p: born(p) in (date(1990, 12, 10), date(1936, 8, 17)),
            ),
            # Timestamps with times: exact, in any zone.
            (
                _cond("created_at", "eq", "2026-03-01T12:00:00Z"),
                lambda p: created(p) == _at("2026-03-01T12:00:00"),
            ),
            (
                _cond("created_at", "gte", "2026-03-01T13:00:00+01:00"),
                lambda p: created(p) >= _at("2026-03-01T12:00:00"),
            ),
            (
                _cond("created_at", "lt", "2026-03-03T00:00:00Z"),
                lambda p: created(p) < _at("2026-03-03T00:00:00"),
            ),
            (
                _cond("created_at", "between", ["2026-03-01T12:00:00Z", "2026-03-02T23:59:59.999998Z"]),
                created_in("2026-03-01T12:00:00", "2026-03-02T23:59:59.999998"),
            ),
            # A time and a bare date mixed.
            (
                _cond("created_at", "between", ["2026-03-01T12:00:00Z", "2026-03-02"]),
                created_in("2026-03-01T12:00:00", "2026-03-02T23:59:59.999999"),
            ),
            # A nullable timestamp.
            (_cond("last_activity_at", "exists"), lambda p: active(p) is not None),
            (_cond("last_activity_at", "not_exists"), lambda p: active(p) is None),
            (
                _cond("last_activity_at", "gt", "2026-03-02"),
                lambda p: active(p) is not None and active(p) >= _at("2026-03-03T00:00:00"),
            ),
            (
                _cond("last_activity_at", "lte", "2026-03-02"),
                lambda p: active(p) is not None and active(p) < _at("2026-03-03T00:00:00"),
            ),
            (_cond("last_activity_at", "neq", "2026-03-05"), lambda p: not on_day(active, "2026-03-05")(p)),
            (
                _cond("last_activity_at", "not_in", ["2026-03-05", "2026-03-02T00:00:00Z"]),
                lambda p: not on_day(active, "2026-03-05")(p) and active(p) != _at("2026-03-02T00:00:00"),
            ),
        ],
    )


async def test_numbers_take_every_operator(world: World) -> None:
    visits = _value("visits")
    await _check(
        world,
        [
            (_cond("visits", "eq", 12), lambda p: visits(p) == 12),
            (_cond("visits", "eq", 12.0), lambda p: visits(p) == 12),
            (_cond("visits", "neq", 12), lambda p: visits(p) != 12),
            (_cond("visits", "gt", 10), lambda p: visits(p) > 10),
            (_cond("visits", "gte", 12), lambda p: visits(p) >= 12),
            (_cond("visits", "lt", 3), lambda p: visits(p) < 3),
            (_cond("visits", "lte", 3), lambda p: visits(p) <= 3),
            (_cond("visits", "between", [3, 12]), lambda p: 3 <= visits(p) <= 12),
            (_cond("visits", "between", [2.5, 7.5]), lambda p: 2.5 <= visits(p) <= 7.5),
            (_cond("visits", "in", [0, 40]), lambda p: visits(p) in (0, 40)),
            (_cond("visits", "not_in", [0, 40]), lambda p: visits(p) not in (0, 40)),
            (_cond("revenue_minor", "eq", 0), lambda p: True),
        ],
    )


async def test_tags_and_emails_are_sets(world: World) -> None:
    tags, emails = _value("tags"), _value("emails")
    # Tags are kept lower-cased ("VIP" was written as "vip"), and searched so.
    await _check(
        world,
        [
            (_cond("tags", "contains", "vip"), lambda p: "vip" in {t.lower() for t in tags(p)}),
            (_cond("tags", "contains", "VIP"), lambda p: "vip" in {t.lower() for t in tags(p)}),
            (_cond("tags", "eq", "partner"), lambda p: "partner" in tags(p)),
            (_cond("tags", "neq", "newsletter"), lambda p: "newsletter" not in tags(p)),
            (
                _cond("tags", "in", ["partner", "newsletter"]),
                lambda p: bool(tags(p) & {"partner", "newsletter"}),
            ),
            (
                _cond("tags", "not_in", ["vip", "partner"]),
                lambda p: not {t.lower() for t in tags(p)} & {"vip", "partner"},
            ),
            (_cond("tags", "exists"), lambda p: bool(tags(p))),
            (_cond("tags", "not_exists"), lambda p: not tags(p)),
            # Every email of a contact counts, the primary one included.
            (
                _cond("emails", "contains", "ada.work@example.com"),
                lambda p: "ada.work@example.com" in emails(p),
            ),
            (_cond("emails", "contains", "ADA@Example.com"), lambda p: "ada@example.com" in emails(p)),
            (
                _cond(
                    "emails", "in", ["alan@bletchley.example.com", "zed@example.com", "nobody@example.com"]
                ),
                lambda p: bool(emails(p) & {"alan@bletchley.example.com", "zed@example.com"}),
            ),
            (
                _cond("emails", "not_in", ["ada@example.com", "ken@example.com"]),
                lambda p: not emails(p) & {"ada@example.com", "ken@example.com"},
            ),
            (_cond("emails", "exists"), lambda p: bool(emails(p))),
            (_cond("emails", "not_exists"), lambda p: not emails(p)),
        ],
    )


async def test_custom_numbers_and_strings(world: World) -> None:
    score, nickname = _value("properties.score"), _value("properties.nickname")

    def scored(test: Callable[[float], bool]) -> Callable[[Person], bool]:
        return lambda p: score(p) is not None and test(score(p))

    await _check(
        world,
        [
            (_cond("properties.score", "eq", 50), scored(lambda s: s == 50)),
            (_cond("properties.score", "neq", 50), lambda p: score(p) != 50),
            (_cond("properties.score", "gt", 75.25), scored(lambda s: s > 75.25)),
            (_cond("properties.score", "gte", 75.25), scored(lambda s: s >= 75.25)),
            (_cond("properties.score", "lt", 0), scored(lambda s: s < 0)),
            (_cond("properties.score", "lte", 0), scored(lambda s: s <= 0)),
            (_cond("properties.score", "between", [0, 90]), scored(lambda s: 0 <= s <= 90)),
            (_cond("properties.score", "in", [100, -5.5]), scored(lambda s: s in (100, -5.5))),
            (_cond("properties.score", "not_in", [100, 50]), lambda p: score(p) not in (100, 50)),
            (_cond("properties.score", "exists"), lambda p: score(p) is not None),
            (_cond("properties.score", "not_exists"), lambda p: score(p) is None),
            (_cond("properties.nickname", "eq", "kenny"), lambda p: nickname(p) == "kenny"),
            (_cond("properties.nickname", "neq", "kenny"), lambda p: nickname(p) != "kenny"),
            (
                _cond("properties.nickname", "contains", "GRACE"),
                lambda p: "grace" in (nickname(p) or "").lower(),
            ),
            (_cond("properties.nickname", "contains", "0%_"), lambda p: "0%_" in (nickname(p) or "")),
            (_cond("properties.nickname", "contains", "_"), lambda p: "_" in (nickname(p) or "")),
            (
                _cond("properties.nickname", "in", ["kenny", "The Countess"]),
                lambda p: nickname(p) in ("kenny", "The Countess"),
            ),
            (_cond("properties.nickname", "not_exists"), lambda p: nickname(p) is None),
        ],
    )


async def test_custom_enums_multi_enums_and_bools(world: World) -> None:
    plan, vip = _value("properties.plan"), _value("properties.vip")

    def features(person: Person) -> set[str]:
        return set(person.prop("features") or [])

    await _check(
        world,
        [
            (_cond("properties.plan", "eq", "pro"), lambda p: plan(p) == "pro"),
            (_cond("properties.plan", "neq", "pro"), lambda p: plan(p) != "pro"),
            (
                _cond("properties.plan", "in", ["free", "enterprise"]),
                lambda p: plan(p) in ("free", "enterprise"),
            ),
            (_cond("properties.plan", "not_in", ["pro"]), lambda p: plan(p) != "pro"),
            (_cond("properties.plan", "exists"), lambda p: plan(p) is not None),
            (_cond("properties.plan", "not_exists"), lambda p: plan(p) is None),
            # A multi-enum is a set of options: contains, eq and in test membership.
            (_cond("properties.features", "contains", "sso"), lambda p: "sso" in features(p)),
            (_cond("properties.features", "contains", "audit"), lambda p: "audit" in features(p)),
            (_cond("properties.features", "eq", "api"), lambda p: "api" in features(p)),
            (
                _cond("properties.features", "in", ["audit", "sso"]),
                lambda p: bool(features(p) & {"audit", "sso"}),
            ),
            (_cond("properties.features", "neq", "sso"), lambda p: "sso" not in features(p)),
            (
                _cond("properties.features", "not_in", ["api", "sso"]),
                lambda p: not features(p) & {"api", "sso"},
            ),
            # An empty list is no value.
            (_cond("properties.features", "exists"), lambda p: bool(features(p))),
            (_cond("properties.features", "not_exists"), lambda p: not features(p)),
            (_cond("properties.vip", "eq", True), lambda p: vip(p) is True),
            (_cond("properties.vip", "eq", False), lambda p: vip(p) is False),
            (_cond("properties.vip", "neq", True), lambda p: vip(p) is not True),
            (_cond("properties.vip", "in", [False]), lambda p: vip(p) is False),
            (_cond("properties.vip", "not_exists"), lambda p: vip(p) is None),
        ],
    )
    refusals = [
        (_cond("properties.plan", "eq", "gold"), "filter.value"),
        (_cond("properties.plan", "in", ["pro", "gold"]), "filter.value.1"),
        (_cond("properties.plan", "eq", 1), "filter.value"),
        (_cond("properties.features", "contains", "ldap"), "filter.value"),
        (_cond("properties.features", "in", ["ldap"]), "filter.value.0"),
        (_cond("properties.vip", "eq", "yes"), "filter.value"),
        (_cond("properties.vip", "eq", 1), "filter.value"),
        (_cond("properties.vip", "gt", False), "filter.op"),
        (_cond("properties.vip", "contains", "t"), "filter.op"),
        (_cond("properties.score", "gt", 10**400), "filter.value"),  # beyond what a float holds
    ]
    for condition, place in refusals:
        await _refused(world.client, {"filter": condition}, place)


async def test_custom_dates(world: World) -> None:
    renewal = _value("properties.renewal")

    def renews(test: Callable[[date], bool]) -> Callable[[Person], bool]:
        return lambda p: renewal(p) is not None and test(renewal(p))

    end_of_march, first_of_march = date(2026, 3, 31), date(2026, 3, 1)
    await _check(
        world,
        [
            (
                _cond("properties.renewal", "between", ["2026-03-01", "2026-03-31"]),
                renews(lambda d: first_of_march <= d <= end_of_march),
            ),
            (_cond("properties.renewal", "eq", "2026-03-31"), renews(lambda d: d == end_of_march)),
            (_cond("properties.renewal", "neq", "2026-03-31"), lambda p: renewal(p) != end_of_march),
            (_cond("properties.renewal", "lt", "2026-03-31"), renews(lambda d: d < end_of_march)),
            (_cond("properties.renewal", "lte", "2026-03-31"), renews(lambda d: d <= end_of_march)),
            (_cond("properties.renewal", "gt", "2026-03-31"), renews(lambda d: d > end_of_march)),
            (_cond("properties.renewal", "gte", "2026-03-01"), renews(lambda d: d >= first_of_march)),
            (
                _cond("properties.renewal", "not_in", ["2026-03-31", "2025-12-31"]),
                lambda p: renewal(p) not in (end_of_march, date(2025, 12, 31)),
            ),
            (_cond("properties.renewal", "not_exists"), lambda p: renewal(p) is None),
        ],
    )
    for value in ("2026-02-30", "2026-03-01T10:00:00Z", "soon", 20260301):
        await _refused(world.client, {"filter": _cond("properties.renewal", "eq", value)}, "filter.value")


async def test_and_or_groups_nest(world: World) -> None:
    stage, plan, tags = _value("lifecycle_stage"), _value("properties.plan"), _value("tags")
    city, country, visits = _value("city"), _value("country"), _value("visits")

    def vip_tag(person: Person) -> bool:
        return "vip" in {t.lower() for t in tags(person)}

    await _check(
        world,
        [
            (
                {
                    "and": [
                        _cond("lifecycle_stage", "in", ["customer", "lead", "opportunity"]),
                        {"or": [_cond("properties.plan", "eq", "pro"), _cond("tags", "contains", "vip")]},
                    ]
                },
                lambda p: (
                    stage(p) in ("customer", "lead", "opportunity") and (plan(p) == "pro" or vip_tag(p))
                ),
            ),
            (
                {
                    "or": [
                        {
                            "and": [
                                _cond("city", "eq", "Boston"),
                                _cond("properties.plan", "eq", "enterprise"),
                            ]
                        },
                        {"and": [_cond("country", "eq", "GB"), _cond("properties.features", "not_exists")]},
                        _cond("visits", "gt", 20),
                    ]
                },
                lambda p: (
                    (city(p) == "Boston" and plan(p) == "enterprise")
                    or (country(p) == "GB" and not p.prop("features"))
                    or visits(p) > 20
                ),
            ),
            (
                {
                    "and": [
                        {
                            "or": [
                                {"and": [_cond("country", "eq", "US"), _cond("visits", "gte", 3)]},
                                _cond("tags", "exists"),
                            ]
                        },
                        {
                            "or": [
                                _cond("properties.score", "not_exists"),
                                _cond("properties.score", "lt", 60),
                            ]
                        },
                    ]
                },
                lambda p: (
                    ((country(p) == "US" and visits(p) >= 3) or bool(tags(p)))
                    and (p.prop("score") is None or p.prop("score") < 60)
                ),
            ),
            ({"and": [_cond("city", "eq", "London")]}, lambda p: city(p) == "London"),
            ({"or": [_cond("city", "eq", "London")]}, lambda p: city(p) == "London"),
            (_nested(MAX_DEPTH, _cond("visits", "gte", 12)), lambda p: visits(p) >= 12),
        ],
    )


def _nested(depth: int, condition: JSON) -> JSON:
    """`condition` inside groups, `depth` levels in all (a bare condition is one)."""
    node = condition
    for level in range(depth - 1):
        node = {"and" if level % 2 else "or": [node]}
    return node


def _sort_value(name: str) -> Callable[[Person], Any]:
    if name == "properties.features":
        # A multi-enum sorts by its first option, in the definition's order.
        return lambda p: next((o for o in FEATURE_ORDER if o in (p.prop("features") or [])), None)
    if name == "properties.vip":
        return lambda p: None if p.prop("vip") is None else str(p.prop("vip")).lower()
    return _value(name)


SORTS = [
    "last_name",
    "birthday",
    "last_activity_at",
    "visits",
    "created_at",
    "properties.score",
    "properties.plan",
    "properties.renewal",
    "properties.features",
    "properties.vip",
    "properties.nickname",
]


async def test_sorting_walks_every_match_once_in_order_with_the_missing_last(world: World) -> None:
    names = {person.id: key for key, person in zip(PEOPLE, world.people, strict=True)}
    wrong = []
    for name in SORTS:
        for direction in ("asc", "desc"):
            # Three a page: boundaries fall inside ties and between present and missing values.
            sort = {"field": name, "direction": direction}
            ids, _pages = await _walk(world.client, {"sort": sort, "limit": 3})
            expected = world.order(_sort_value(name), descending=direction == "desc")
            if ids != expected:
                wrong.append(
                    f"{sort}: got {[names[i] for i in ids]}, expected {[names[i] for i in expected]}"
                )
    assert not wrong, "\n".join(wrong)

    # The default: newest first, ties by id.
    ids, _ = await _walk(world.client, {"limit": 3})
    assert ids == world.order(_value("created_at"), descending=True)
    # Ascending is the default direction.
    ids, _ = await _walk(world.client, {"sort": {"field": "properties.score"}, "limit": 2})
    assert ids == world.order(_value("properties.score"), descending=False)


def _dialect(name: str) -> Dialect:
    return make_url(f"{name}://").get_dialect()()


CUSTOM_SORTS = [name for name in SORTS if name.startswith("properties.")]


def _requiring(name: str) -> list[tuple[JSON, Callable[[Person], bool]]]:
    """Filters that only records with a value for `name` meet, and who meets each (an empty
    multi-enum has none)."""
    has = _sort_value(name)
    return [
        (_cond(name, "exists"), lambda p: has(p) is not None),
        (
            {"and": [_cond("visits", "gte", 0), {"or": [_cond(name, "exists"), _cond(name, "exists")]}]},
            lambda p: has(p) is not None,
        ),
        (
            {"or": [{"and": [_cond(name, "exists"), _cond("city", "exists")]}, _cond(name, "exists")]},
            lambda p: has(p) is not None,
        ),
    ]


async def test_a_sort_by_a_property_the_filter_requires_walks_every_match_once_in_order(
    world: World,
) -> None:
    names = {person.id: key for key, person in zip(PEOPLE, world.people, strict=True)}
    wrong = []
    for name in CUSTOM_SORTS:
        for condition, predicate in _requiring(name):
            for direction in ("asc", "desc"):
                sort = {"field": name, "direction": direction}
                ids, _pages = await _walk(world.client, {"filter": condition, "sort": sort, "limit": 2})
                matches = world.ids(predicate)
                expected = [
                    i for i in world.order(_sort_value(name), descending=direction == "desc") if i in matches
                ]
                if ids != expected:
                    wrong.append(
                        f"{sort} within {json.dumps(condition)}: got {[names[i] for i in ids]}, "
                        f"expected {[names[i] for i in expected]}"
                    )
    assert not wrong, "\n".join(wrong)


def test_a_sort_by_a_required_property_is_an_inner_join_in_index_order() -> None:
    score = PropertyDefinition(object_type="contact", key="score", type="number", options=[])
    compiler = FilterCompiler(CONTACT_FIELDS, {"score": score})
    sort = Sort(field="properties.score", direction=SortDirection.DESC)

    def sql(within: JSON | None) -> str:
        node = Filter.model_validate(within) if within is not None else None
        statement, keyset = compiler.sorted(select(Contact), sort, NEWEST_FIRST, within=node)
        compiled = statement.order_by(*keyset.order_by()).compile(dialect=_dialect("postgresql"))
        return str(compiled).upper()

    for requiring, _ in _requiring("properties.score"):
        inner = sql(requiring)
        assert " JOIN CUSTOM_VALUE" in inner, inner
        assert "OUTER" not in inner, inner
        assert "NULLS LAST" not in inner, inner
    for lenient in (
        None,
        _cond("properties.score", "neq", 3),
        {"or": [_cond("properties.score", "gt", 3), _cond("city", "exists")]},
    ):
        outer = sql(lenient)
        assert "LEFT OUTER JOIN CUSTOM_VALUE" in outer, outer
        assert "NULLS LAST" in outer, outer


def test_an_in_list_is_one_parameter_and_a_plain_condition_on_either_database() -> None:
    score = PropertyDefinition(object_type="contact", key="score", type="number", options=[])
    compiler = FilterCompiler(CONTACT_FIELDS, {"score": score})
    for field_name, values in (("city", [f"c{n}" for n in range(MAX_LIST)]), ("properties.score", [1, 2])):
        node = Filter.model_validate(_cond(field_name, "in", values))
        statement = select(Contact.id).where(compiler.where(node))
        for dialect in (_dialect("sqlite"), _dialect("postgresql")):
            compiled = statement.compile(dialect=dialect)
            lists = [value for value in compiled.params.values() if isinstance(value, list)]
            assert lists == [[float(v) for v in values] if field_name == "properties.score" else values]
            # Written as a comparison, not `(…) = 1`, which SQLite could not serve from an index.
            assert "= 1" not in str(compiled), str(compiled)


def test_which_filters_require_a_value() -> None:
    def requires(node: JSON) -> bool:
        return requires_value(Filter.model_validate(node), "properties.score")

    for op, value in (
        ("eq", 1),
        ("in", [1]),
        ("lt", 1),
        ("lte", 1),
        ("gt", 1),
        ("gte", 1),
        ("between", [1, 2]),
        ("exists", None),
    ):
        assert requires(_cond("properties.score", op, value)), op
    for op, value in (("neq", 1), ("not_in", [1]), ("not_exists", None)):
        assert not requires(_cond("properties.score", op, value)), op
    assert not requires(_cond("properties.plan", "eq", "pro"))
    assert requires({"and": [_cond("city", "exists"), _cond("properties.score", "gt", 1)]})
    assert not requires({"or": [_cond("city", "exists"), _cond("properties.score", "gt", 1)]})
    assert requires(
        {"or": [_cond("properties.score", "lt", 1), {"and": [_cond("properties.score", "gt", 9)]}]}
    )


async def test_a_sorted_filtered_walk_counts_its_matches_on_every_page(world: World) -> None:
    condition = {"or": [_cond("tags", "exists"), _cond("properties.plan", "in", ["pro", "enterprise"])]}
    body = {
        "filter": condition,
        "sort": {"field": "properties.score", "direction": "desc"},
        "limit": 2,
        "with_total": True,
    }
    ids, pages = await _walk(world.client, body)
    matches = world.ids(lambda p: bool(p.get("tags")) or p.prop("plan") in ("pro", "enterprise"))
    assert len(matches) >= 5, "the data should span several pages"
    assert set(ids) == matches
    assert ids == [i for i in world.order(_value("properties.score"), descending=True) if i in matches]
    assert [page["total"] for page in pages] == [len(matches)] * len(pages)

    everything = await _search(world.client, {"with_total": True, "limit": 1})
    assert everything["total"] == len(world.people)
    assert len(everything["items"]) == 1
    assert (await _search(world.client, {"limit": 1}))["total"] is None
    none = await _search(world.client, {"filter": _cond("city", "eq", "Atlantis"), "with_total": True})
    assert (none["items"], none["next_cursor"], none["total"]) == ([], None, 0)


async def test_a_search_answers_whole_contacts(world: World) -> None:
    [ada] = world.ids(lambda p: p.get("email") == "ada@example.com")
    page = await _search(world.client, {"filter": _cond("emails", "contains", "ada.work@example.com")})
    [item] = page["items"]
    assert item["id"] == ada
    assert item == (await world.client.get(f"/v1/contacts/{item['id']}")).json()
    assert item["properties"]["features"] == ["api", "sso"]
    assert sorted(item["emails"]) == sorted(["ada@example.com", "ada.work@example.com"])


def _cursor_document(cursor: str) -> JSON:
    document: JSON = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    return document


def _encode(document: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


async def test_a_cursor_belongs_to_its_sort(world: World) -> None:
    client = world.client
    by_score = {"sort": {"field": "properties.score", "direction": "desc"}, "limit": 2}
    cursor = (await _search(client, by_score))["next_cursor"]
    assert cursor is not None
    assert _cursor_document(cursor)["sort"] == "-properties.score,-id"
    # The same sort takes it ...
    assert (await client.post("/v1/contacts/search", json={**by_score, "cursor": cursor})).status_code == 200
    # ... another does not: another field, another direction, the default sort.
    for sort in (
        {"field": "properties.score", "direction": "asc"},
        {"field": "properties.renewal", "direction": "desc"},
        {"field": "last_name", "direction": "desc"},
        None,
    ):
        await _refused(client, {"sort": sort, "cursor": cursor}, "cursor")
    # Nor one that is not a cursor at all, or holds a value of the wrong type.
    document = _cursor_document(cursor)
    (_tag, last_id) = document["after"][1]
    for bad in (
        "not a cursor",
        cursor[:-4],
        _encode({"sort": document["sort"], "after": [["str", "high"], ["uuid", last_id]]}),
        _encode({"sort": document["sort"], "after": [["float", 50.0]]}),
    ):
        await _refused(client, {**by_score, "cursor": bad}, "cursor")
    # A cursor at a contact without the value carries that: the walk goes on among those.
    missing_last = world.order(_value("properties.score"), descending=True)
    without = sum(1 for p in world.people if p.prop("score") is None)
    first = await _search(client, {**by_score, "limit": len(world.people) - without + 1})
    assert first["next_cursor"] is not None
    assert _cursor_document(first["next_cursor"])["after"][0] == ["null", None]
    rest = await _search(client, {**by_score, "cursor": first["next_cursor"], "limit": 50})
    assert [item["id"] for item in first["items"] + rest["items"]] == missing_last


async def _refused(client: httpx.AsyncClient, body: JSON, place: str) -> JSON:
    """The search is a 422 problem whose one error names `place`."""
    response = await client.post("/v1/contacts/search", json=body)
    assert response.status_code == 422, (body, response.text)
    assert response.headers["content-type"] == "application/problem+json", body
    problem: JSON = response.json()
    assert problem["status"] == 422
    assert [(error["field"], error["location"]) for error in problem["errors"]] == [(place, "body")], (
        body,
        problem,
    )
    return problem


async def test_errors_are_422_problems_naming_their_place(world: World) -> None:
    refusals: list[tuple[JSON, str]] = [
        # Unknown fields and properties, where they are.
        (
            {"filter": {"and": [_cond("city", "eq", "London"), _cond("shoe_size", "eq", 42)]}},
            "filter.and.1.field",
        ),
        ({"filter": _cond("properties.shoe_size", "eq", 42)}, "filter.field"),
        ({"filter": _cond("id", "eq", str(uuid.uuid4()))}, "filter.field"),
        # Values of the wrong type, however deep.
        (
            {"filter": {"or": [_cond("visits", "gt", "many"), _cond("city", "eq", "London")]}},
            "filter.or.0.value",
        ),
        (
            {
                "filter": {
                    "and": [
                        _cond("city", "exists"),
                        {"or": [_cond("city", "eq", "X"), _cond("birthday", "lt", "soon")]},
                    ]
                }
            },
            "filter.and.1.or.1.value",
        ),
        ({"filter": _cond("visits", "eq", True)}, "filter.value"),
        ({"filter": _cond("visits", "eq", None)}, "filter.value"),
        ({"filter": _cond("created_at", "gte", "yesterday")}, "filter.value"),
        ({"filter": _cond("created_at", "between", ["2026-03-01", "noon"])}, "filter.value.1"),
        ({"filter": _cond("city", "eq", "x" * 1001)}, "filter.value"),
        ({"filter": _cond("city", "eq", ["London"])}, "filter.value"),
        # Lists and bounds.
        ({"filter": _cond("city", "in", [])}, "filter.value"),
        ({"filter": _cond("city", "in", "London")}, "filter.value"),
        ({"filter": _cond("visits", "between", [1])}, "filter.value"),
        ({"filter": _cond("visits", "between", [1, 2, 3])}, "filter.value"),
        ({"filter": {"field": "city", "op": "exists", "value": "London"}}, "filter.value"),
        # Operators that do not apply.
        ({"filter": _cond("visits", "contains", "1")}, "filter.op"),
        ({"filter": _cond("properties.score", "contains", "1")}, "filter.op"),
        ({"filter": _cond("tags", "lt", "vip")}, "filter.op"),
        ({"filter": _cond("emails", "between", ["a", "b"])}, "filter.op"),
        # The shape of the request itself.
        ({"filter": {"field": "city", "op": "like", "value": "L"}}, "filter.op"),
        ({"filter": {"field": "city"}}, "filter"),
        ({"filter": {"field": "city", "op": "exists", "and": [_cond("city", "exists")]}}, "filter"),
        ({"filter": {"and": []}}, "filter.and"),
        ({"filter": {"and": [{"field": "city", "op": "eq", "value": "X", "nope": 1}]}}, "filter.and.0.nope"),
        ({"sort": {"field": "shoe_size"}}, "sort.field"),
        ({"sort": {"field": "tags"}}, "sort.field"),
        ({"sort": {"field": "properties.shoe_size", "direction": "desc"}}, "sort.field"),
        ({"sort": {"field": "city", "direction": "up"}}, "sort.direction"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"page": 2}, "page"),
    ]
    wrong = []
    for body, place in refusals:
        try:
            await _refused(world.client, body, place)
        except AssertionError as exc:
            wrong.append(f"{json.dumps(body)[:200]} -> expected {place}: {str(exc)[:400]}")
    assert not wrong, "\n".join(wrong)


async def test_a_filter_too_deep_or_too_large_is_refused(world: World) -> None:
    condition = _cond("visits", "gte", 0)
    assert len((await _search(world.client, {"filter": _nested(MAX_DEPTH, condition)}))["items"]) == len(
        world.people
    )
    deep = await _refused(world.client, {"filter": _nested(MAX_DEPTH + 1, condition)}, "filter")
    assert f"{MAX_DEPTH} levels" in deep["errors"][0]["message"]
    # Far deeper than any parser's patience: still a 422, not an error of the server.
    response = await world.client.post("/v1/contacts/search", json={"filter": _nested(400, condition)})
    assert response.status_code == 422, response.text

    most = [_cond("visits", "gte", n) for n in range(MAX_CONDITIONS)]
    assert (await world.client.post("/v1/contacts/search", json={"filter": {"or": most}})).status_code == 200
    # One too many, spread over groups so that no single list is too long.
    half = MAX_CONDITIONS // 2 + 1
    spread = {"and": [{"or": most[:half]}, {"or": most[:half]}]}
    too_many = await _refused(world.client, {"filter": spread}, "filter")
    assert f"{MAX_CONDITIONS} conditions" in too_many["errors"][0]["message"]


async def test_the_longest_lists_a_filter_takes_are_answered(world: World) -> None:
    """Each `in` list is one bound parameter, however long: 100 lists of 500 values would otherwise bind
    50,000 parameters (asyncpg and SQLite take at most 32,767) or, as OR terms, nest deeper than SQLite
    parses (1,000 levels)."""
    city, tags, score, nickname = (
        _value("city"),
        _value("tags"),
        _value("properties.score"),
        _value("properties.nickname"),
    )
    cities = ["London", "Boston", *(f"City{n}" for n in range(MAX_LIST - 2))]
    numbers = [90, 75.25, *range(1000, 1000 + MAX_LIST - 2)]
    days = [f"2026-03-{day:02d}" if day <= 31 else f"2027-01-{day - 31:02d}" for day in range(1, 51)]
    days += [f"{year}-06-15" for year in range(1000, 1000 + MAX_LIST - len(days))]
    assert len(cities) == len(numbers) == len(days) == MAX_LIST
    created = _value("created_at")
    await _check(
        world,
        [
            (_cond("city", "in", cities), lambda p: city(p) in cities),
            (_cond("city", "not_in", cities), lambda p: city(p) not in cities),
            (_cond("properties.score", "in", numbers), lambda p: score(p) in numbers),
            (_cond("properties.score", "not_in", numbers), lambda p: score(p) not in numbers),
            (
                _cond("tags", "in", ["vip", *cities[1:]]),
                lambda p: bool({t.lower() for t in tags(p)} & {t.lower() for t in ["vip", *cities[1:]]}),
            ),
            (_cond("created_at", "in", days), lambda p: created(p).date().isoformat() in days),
            (
                {
                    "or": [
                        _cond("city", "in", cities),
                        _cond("properties.nickname", "in", ["kenny", *cities[1:]]),
                    ]
                },
                lambda p: city(p) in cities or nickname(p) == "kenny",
            ),
            (
                {"or": [_cond("city", "in", cities)] * (MAX_CONDITIONS - 1) + [_cond("tags", "in", cities)]},
                lambda p: city(p) in cities,
            ),
            (
                {"and": [_cond("properties.score", "not_in", numbers)] * MAX_CONDITIONS},
                lambda p: score(p) not in numbers,
            ),
        ],
    )
